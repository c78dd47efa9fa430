"""The cost model prices the functions the stack deploys (memory sizes cannot drift apart)."""

from __future__ import annotations

from bench.cost import AfterCall, Assumptions
from infra import stack


def test_the_cost_model_uses_the_stacks_function_memory() -> None:
    a = Assumptions()
    assert a.message_memory_mb == stack.MESSAGE.memory_mb
    assert a.connect_memory_mb == stack.CONNECT.memory_mb
    assert a.disconnect_memory_mb == stack.DISCONNECT.memory_mb
    assert a.webhook_memory_mb == stack.WEBHOOK.memory_mb


def test_the_after_call_figures_use_the_stacks_memory_and_the_agents_retention() -> None:
    from voice_agent.agent.config import AGENT

    assert AfterCall().queued_memory_mb == stack.RECORDS.memory_mb == stack.TIMERS.memory_mb
    assert AfterCall().retention_days == AGENT.transcript_retention_days
