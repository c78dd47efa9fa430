"""A fallback chain on the whole local stack: Bedrock throttles the turn, OpenAI answers it, the
caller hears the reply (not the apology), and the switch is logged and counted."""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import Any

import pytest

from local.caller import scenario
from local.demo_model import HOURS
from local.openai_server import Brain, Reply
from local.stack import LocalStack
from tests.e2e.conftest import AUTH_TOKEN, explain, run, scripted
from tests.support.local_calls import captured_logs
from voice_agent import wiring
from voice_agent.agent.config import AGENT
from voice_agent.model_choice import ModelRef


class ThrottledOnce:
    """The demo model, except that the first request gets Bedrock's 429 ThrottlingException."""

    def __init__(self, inner: Brain) -> None:
        self.inner = inner
        self.throttled = 0
        self._lock = threading.Lock()

    def reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            if self.throttled == 0:
                self.throttled += 1
                return Reply(fault="status", status=429, error="ThrottlingException")
        return self.inner.reply(request)


def test_a_throttled_bedrock_turn_is_answered_by_the_fallback(stack: LocalStack) -> None:
    assert stack.bedrock is not None and stack.model is not None and stack.brain is not None
    chain = dataclasses.replace(AGENT, llm_fallbacks=(ModelRef("openai", "gpt-4.1-mini"),))
    throttled = ThrottledOnce(stack.brain)
    openai_before = stack.model.completions
    try:
        with pytest.MonkeyPatch.context() as patch, captured_logs() as logs:
            patch.setattr(wiring, "agent", functools.lru_cache(maxsize=1)(lambda: chain))
            patch.setattr(stack.bedrock, "brain", throttled)
            wiring.reset_model()
            call = scripted([{"say": "Hi! When are you open on Sunday?", "expect": "Sunday"}, {"hangup": True}])
            result = run(scenario.run(call, voice_url=stack.urls.voice, auth_token=AUTH_TOKEN, out=lambda _: None))
    finally:
        wiring.reset_model()
    assert result.passed, explain(result)
    [reply] = result.call.replies()
    assert reply.text == HOURS and reply.completed  # a reply, not the apology
    assert throttled.throttled == 1
    assert stack.model.completions == openai_before + 1  # OpenAI answered the same turn
    [switch] = [r for r in logs.records() if r["message"] == "llm fallback"]
    assert (switch["failed"], switch["next"], switch["reason"]) == (
        "bedrock:us.amazon.nova-lite-v1:0",
        "openai:gpt-4.1-mini",
        "throttled",
    )
