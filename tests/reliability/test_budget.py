"""A turn that would outlive API Gateway's integration timeout is cut short with a spoken line; the
handler returns in time, so no ``Endpoint request timed out`` frame ever reaches the call.

``make test`` runs it scaled (an 8 s integration and function timeout: the turn budget is the
function's remaining time less 1.5 s, 6.5 s); ``make load`` with API Gateway's real 29 s and the
stack's 28 s function timeout (the turn budget is then ``AgentConfig.turn_budget_s``, 25 s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from infra.local.apigw_ws import INTEGRATION_TIMEOUT_S
from infra.local.caller.phone import RelaySession, Reply
from infra.local.demo_model import ABOUT, HOURS
from infra.local.openai_server import Reply as ModelReply
from infra.local.openai_server import split_tokens
from infra.local.stack import LocalStack
from tests.e2e.conftest import run
from tests.reliability.conftest import AUTH_TOKEN, FULL, ErrorFrames
from tests.support.local_calls import RoutingBrain, place_call, say
from voice_agent.adapters import aws_clients
from voice_agent.agent.config import AGENT
from voice_agent.settings import load_settings

pytestmark = pytest.mark.timeout(180)

INTEGRATION_S = INTEGRATION_TIMEOUT_S if FULL else 8.0
FUNCTION_S = 28.0 if FULL else 8.0  # the CDK stack gives the message function 28 s
BUDGET_S = min(AGENT.turn_budget_s, FUNCTION_S - 1.5)
CUT = AGENT.lines.cut_short
# Three times the budget's worth of words, one a second or so: a model that would talk for a minute.
SLOW_WORDS = " ".join([ABOUT] * 3).split()


@pytest.fixture
def gateway_timeouts(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stack.gateway is not None
    monkeypatch.setattr(stack.gateway, "integration_timeout_s", INTEGRATION_S)
    monkeypatch.setattr(stack.gateway, "function_timeout_s", FUNCTION_S)


def timed_call(stack: LocalStack, marker: str) -> tuple[Reply, Reply, float]:
    assert stack.urls.voice is not None
    replies: list[Reply] = []
    took: list[float] = []

    async def program(session: RelaySession) -> None:
        started = time.monotonic()
        replies.append(await say(session, f"{marker}: tell me about the store.", timeout_s=INTEGRATION_S + 10))
        took.append(time.monotonic() - started)
        replies.append(await say(session, "When are you open?"))

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, program), timeout_s=INTEGRATION_S * 3 + 30)
    assert call.result.protocol_errors == [], call.explain()
    return replies[0], replies[1], took[0]


def assert_cut_in_time(stack: LocalStack, cut: Reply, took: float) -> None:
    assert cut.completed, cut.text  # last: true, after the spoken line
    assert cut.text.endswith(" " + CUT)
    assert len(cut.text) > len(CUT) + 20  # it did speak before the cut
    assert BUDGET_S - 1 < took < INTEGRATION_S, f"cut after {took:.1f} s (budget {BUDGET_S} s)"
    assert stack.gateway is not None
    late = [i for i in stack.gateway.invocations if i.outcome != "ok"]
    assert late == []


@pytest.mark.usefixtures("gateway_timeouts")
def test_a_slow_model_is_cut_short_with_a_line_before_the_integration_timeout(
    stack: LocalStack, brain: RoutingBrain, error_frames: ErrorFrames
) -> None:
    # Tokens a second apart (under the 5 s token-gap timeout): the reply would take a minute.
    gap = 0.8 if FULL else 0.25
    brain.script("budgetslowmodel", ModelReply(tokens=split_tokens(" ".join(SLOW_WORDS)), token_interval_s=gap))
    cut, after, took = timed_call(stack, "budgetslowmodel")
    assert_cut_in_time(stack, cut, took)
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


@pytest.mark.usefixtures("gateway_timeouts")
def test_a_slow_management_api_is_cut_short_with_a_line_before_the_integration_timeout(
    stack: LocalStack, brain: RoutingBrain, error_frames: ErrorFrames
) -> None:
    # The model is quick, but every frame takes long to post: the reply's frames outlast the budget.
    brain.script("budgetslowposts", ModelReply(tokens=split_tokens(" ".join(SLOW_WORDS[:150])), token_interval_s=0.0))
    with slow_posts(delay_s=1.0 if FULL else 0.6) as delays:
        cut, _, took = timed_call(stack, "budgetslowposts")
    assert delays
    assert_cut_in_time(stack, cut, took)
    assert error_frames.new == 0
