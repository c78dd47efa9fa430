"""A turn that would outlive API Gateway's integration timeout is cut short with a spoken line; the
handler returns in time, so no ``Endpoint request timed out`` frame ever reaches the call.

``make test`` runs it scaled (an 8 s integration timeout and a 7 s function: the turn budget is the
function's remaining time less 1.5 s, 5.5 s); ``make load`` runs the slow model with API Gateway's
real 29 s and the stack's 28 s function timeout (the turn budget is then
``AgentConfig.turn_budget_s``, 25 s). The slow management API always runs scaled: at full size the
reply's length bound (``max_reply_chars``) ends it before 25 s of one-second posts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.apigw_ws import INTEGRATION_TIMEOUT_S
from local.caller.phone import RelaySession, Reply
from local.demo_model import ABOUT, HOURS
from local.openai_server import Reply as ModelReply
from local.openai_server import split_tokens
from local.stack import LocalStack
from tests.e2e.conftest import run
from tests.reliability.conftest import AUTH_TOKEN, FULL, ErrorFrames
from tests.support.local_calls import RoutingBrain, place_call, say
from voice_agent.adapters import aws_clients
from voice_agent.agent.config import AGENT
from voice_agent.settings import load_settings

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class Timeouts:
    integration_s: float
    function_s: float

    @property
    def budget_s(self) -> float:
        return min(AGENT.turn_budget_s, self.function_s - 1.5)


SCALED = Timeouts(integration_s=8.0, function_s=7.0)  # as in AWS: the function stops 1 s before
REAL = Timeouts(integration_s=INTEGRATION_TIMEOUT_S, function_s=28.0)  # the CDK stack gives 28 s
CUT = AGENT.lines.cut_short
REPORT = Path(".local/reliability/budget.json")
# Three times the budget's worth of words, one a second or so: a model that would talk for a minute.
SLOW_WORDS = " ".join([ABOUT] * 3).split()


def set_timeouts(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, timeouts: Timeouts) -> None:
    assert stack.gateway is not None
    monkeypatch.setattr(stack.gateway, "integration_timeout_s", timeouts.integration_s)
    monkeypatch.setattr(stack.gateway, "function_timeout_s", timeouts.function_s)


def timed_call(stack: LocalStack, marker: str, timeouts: Timeouts) -> tuple[Reply, Reply, float]:
    assert stack.urls.voice is not None
    replies: list[Reply] = []
    took: list[float] = []

    async def program(session: RelaySession) -> None:
        started = time.monotonic()
        replies.append(await say(session, f"{marker}: tell me about the store.", timeout_s=timeouts.integration_s + 10))
        took.append(time.monotonic() - started)
        replies.append(await say(session, "When are you open?"))

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, program), timeout_s=timeouts.integration_s * 3 + 30)
    assert call.result.protocol_errors == [], call.explain()
    return replies[0], replies[1], took[0]


def assert_cut_in_time(stack: LocalStack, cut: Reply, took: float, timeouts: Timeouts) -> None:
    assert cut.completed, cut.text  # last: true, after the spoken line
    assert cut.text.endswith(" " + CUT)
    assert len(cut.text) > len(CUT) + 20  # it did speak before the cut
    budget = timeouts.budget_s
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    figures = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    figures[cut.caller.split(":")[0]] = {
        "integration_timeout_s": timeouts.integration_s,
        "budget_s": budget,
        "reply_cut_after_s": round(took, 2),
    }
    REPORT.write_text(json.dumps(figures, indent=2))
    assert budget - 1 < took < timeouts.integration_s, f"cut after {took:.1f} s (budget {budget} s)"
    assert stack.gateway is not None
    late = [i for i in stack.gateway.invocations if i.outcome != "ok"]
    assert late == []


def test_a_slow_model_is_cut_short_with_a_line_before_the_integration_timeout(
    stack: LocalStack, brain: RoutingBrain, error_frames: ErrorFrames, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeouts = REAL if FULL else SCALED
    set_timeouts(stack, monkeypatch, timeouts)
    # Tokens up to a second apart (under the 5 s token-gap timeout): the reply would take a minute.
    gap = 0.8 if FULL else 0.25
    brain.script("budgetslowmodel", ModelReply(tokens=split_tokens(" ".join(SLOW_WORDS)), token_interval_s=gap))
    cut, after, took = timed_call(stack, "budgetslowmodel", timeouts)
    assert_cut_in_time(stack, cut, took, timeouts)
    assert after.completed and after.text == HOURS
    assert error_frames.new == 0


@contextmanager
def slow_posts(delay_s: float) -> Iterator[list[float]]:
    """Every PostToConnection waits ``delay_s`` before it goes out (a congested management API)."""
    client = aws_clients.management_api(load_settings().relay_callback_url or "")
    delays: list[float] = []

    def delay(**_: Any) -> None:
        delays.append(delay_s)
        time.sleep(delay_s)

    client.meta.events.register_first("before-send.apigatewaymanagementapi.PostToConnection", delay)
    try:
        yield delays
    finally:
        client.meta.events.unregister("before-send.apigatewaymanagementapi.PostToConnection", delay)


def test_a_slow_management_api_is_cut_short_with_a_line_before_the_integration_timeout(
    stack: LocalStack, brain: RoutingBrain, error_frames: ErrorFrames, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_timeouts(stack, monkeypatch, SCALED)
    # The model is quick, but every frame takes long to post: the reply's frames outlast the budget.
    brain.script("budgetslowposts", ModelReply(tokens=split_tokens(" ".join(SLOW_WORDS[:150])), token_interval_s=0.0))
    with slow_posts(delay_s=0.6) as delays:
        cut, _, took = timed_call(stack, "budgetslowposts", SCALED)
    assert delays
    assert_cut_in_time(stack, cut, took, SCALED)
    assert error_frames.new == 0
