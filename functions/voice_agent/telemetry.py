"""CloudWatch metrics in Embedded Metric Format (one JSON log line, no API call, no latency).

Each call builds its own ``EphemeralMetrics`` so concurrent invocations (threads in the local
stand-in) never flush each other's values.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from voice_agent import env_names as names
from voice_agent import metric_names as metric
from voice_agent.core.turn_states import STATUS_METRICS, TurnStatus

if TYPE_CHECKING:
    from voice_agent.core.relay import HandledFrame
    from voice_agent.core.turn_states import TurnOutcome


def _metrics() -> EphemeralMetrics:
    return EphemeralMetrics(
        namespace=os.environ.get(names.POWERTOOLS_METRICS_NAMESPACE, names.METRICS_NAMESPACE),
        service=os.environ.get(names.POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME),
    )


def record_turn(outcome: TurnOutcome) -> None:
    m = _metrics()
    m.add_metric(name=metric.TURNS, unit=MetricUnit.Count, value=1)
    m.add_metric(name=metric.TURN_DURATION, unit=MetricUnit.Milliseconds, value=round(outcome.duration_s * 1000, 1))
    if outcome.time_to_first_phrase_s is not None:
        m.add_metric(
            name=metric.TIME_TO_FIRST_PHRASE,
            unit=MetricUnit.Milliseconds,
            value=round(outcome.time_to_first_phrase_s * 1000, 1),
        )
    if outcome.posts:
        m.add_metric(name=metric.POSTS_PER_REPLY, unit=MetricUnit.Count, value=outcome.posts)
    status_metric = STATUS_METRICS.get(outcome.status)
    if status_metric is not None:
        m.add_metric(name=status_metric, unit=MetricUnit.Count, value=1)
    if outcome.status == TurnStatus.ENDED and outcome.detail == "handoff":
        m.add_metric(name=metric.HANDOFFS, unit=MetricUnit.Count, value=1)
    if outcome.tool_calls:
        m.add_metric(name=metric.TOOL_CALLS, unit=MetricUnit.Count, value=outcome.tool_calls)
    m.flush_metrics()


def record_frame(handled: HandledFrame) -> None:
    if handled.outcome is not None:
        record_turn(handled.outcome)
    elif handled.kind == "interrupt" and not handled.ignored:
        record_count(metric.INTERRUPTS)
    elif handled.refused:
        record_count(metric.REFUSED_SETUPS)
    if handled.counted is not None:
        record_count(handled.counted)


def record_count(name: str, value: int = 1) -> None:
    """One counter: Interrupts, Reconnects, Handoffs, RefusedSignatures, ..."""
    m = _metrics()
    m.add_metric(name=name, unit=MetricUnit.Count, value=value)
    m.flush_metrics()


def record_usage(input_tokens: int, output_tokens: int) -> None:
    """The tokens one model request billed."""
    m = _metrics()
    m.add_metric(name=metric.LLM_INPUT_TOKENS, unit=MetricUnit.Count, value=input_tokens)
    m.add_metric(name=metric.LLM_OUTPUT_TOKENS, unit=MetricUnit.Count, value=output_tokens)
    m.flush_metrics()
