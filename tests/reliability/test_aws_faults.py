"""AWS faults behind a live call, through the local stack: DynamoDB throttled on every request,
DynamoDB unavailable for a whole turn (paused, or unreachable), and the management API throttling
every post. Throttles are injected below botocore's retry logic (``tests.support.faults``), so the
production client configuration retries them for real."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from local.caller.phone import RelaySession, Reply
from local.demo_model import ADDRESS, HOURS
from local.stack import LocalStack
from tests.e2e.conftest import run
from tests.reliability.conftest import AUTH_TOKEN, ErrorFrames
from tests.support.faults import FaultInjector, dynamodb_error, rest_json_error
from tests.support.local_calls import place_call, say
from voice_agent import env_names as names
from voice_agent import wiring
from voice_agent.adapters import aws_clients
from voice_agent.agent.config import AGENT
from voice_agent.settings import load_settings

pytestmark = pytest.mark.timeout(120)
APOLOGY = AGENT.lines.apology


class EveryOtherAttempt:
    """Fails every other request attempt made by each thread: every request fails once and
    succeeds on botocore's retry (per thread, so concurrent requests cannot starve each other)."""

    def __init__(self, response: Callable[[], AWSResponse]) -> None:
        self.response = response
        self.injected = 0
        self.attempts = 0
        self._local = threading.local()
        self._lock = threading.Lock()

    def __call__(self, **_: Any) -> AWSResponse | None:
        n = getattr(self._local, "n", 0)
        self._local.n = n + 1
        with self._lock:
            self.attempts += 1
            if n % 2 == 0:
                self.injected += 1
        return self.response() if n % 2 == 0 else None


@contextmanager
def injected(client: Any, event: str, fault: Callable[..., AWSResponse | None]) -> Iterator[None]:
    client.meta.events.register_first(event, fault)
    try:
        yield
    finally:
        client.meta.events.unregister(event, fault)


def only_binding(fault: FaultInjector) -> Callable[..., AWSResponse | None]:
    """``fault``, for the requests that bind a socket to its call (setup's update of the call item)
    only: ``/voice`` issuing the call's token is an UpdateItem too."""

    def maybe(**kwargs: Any) -> AWSResponse | None:
        body = kwargs["request"].body
        text = body.decode() if isinstance(body, bytes) else str(body or "")
        return fault(**kwargs) if "boundConnections" in text else None

    return maybe


def two_turns(stack: LocalStack, during: Callable[[], Any]) -> tuple[Reply, Reply, float]:
    """A call: a first turn (the session is bound), one turn inside ``during`` (a context manager
    factory), one after it; returns the last two and how long the one inside took."""
    assert stack.urls.voice is not None
    replies: list[Reply] = []
    took: list[float] = []

    async def program(session: RelaySession) -> None:
        first = await say(session, "Hello there.")
        assert first.completed, first.text
        await asyncio.sleep(1.0)  # the caller listens (and the turn stores its reply meanwhile)
        with during():
            started = time.monotonic()
            replies.append(await say(session, "When are you open?", timeout_s=40))
            took.append(time.monotonic() - started)
        # The caller hears the apology before speaking again. (Requests that timed out while
        # DynamoDB Local was paused are applied when it resumes; one that landed after the next
        # turn's generation update would make that turn stand down as superseded: see README.)
        await asyncio.sleep(2.0)
        replies.append(await say(session, "And where is the store?"))

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, program), timeout_s=90)
    assert call.result.protocol_errors == [], call.explain()
    assert call.result.outcome == "hung_up", call.explain()
    return replies[0], replies[1], took[0]


def test_dynamodb_throttling_every_request_is_retried_within_the_turn(
    stack: LocalStack, error_frames: ErrorFrames
) -> None:
    fault = EveryOtherAttempt(lambda: dynamodb_error("ProvisionedThroughputExceededException"))
    throttled, after, took = two_turns(stack, lambda: injected(aws_clients.dynamodb(), "before-send.dynamodb", fault))
    assert fault.injected >= 5  # generation, history, the caller's message, one claim per phrase...
    assert throttled.completed and throttled.text == HOURS  # every word, in order, closed with last
    assert took < AGENT.turn_budget_s
    assert after.completed and after.text == ADDRESS
    assert error_frames.new == 0


def test_management_api_throttling_every_post_is_retried_and_delivered_in_order(
    stack: LocalStack, error_frames: ErrorFrames
) -> None:
    fault = EveryOtherAttempt(lambda: rest_json_error("LimitExceededException", 429))
    client = aws_clients.management_api(load_settings().relay_callback_url or "")
    event = "before-send.apigatewaymanagementapi.PostToConnection"
    throttled, after, _ = two_turns(stack, lambda: injected(client, event, fault))
    assert fault.injected >= 3
    assert throttled.completed and throttled.text == HOURS
    assert after.completed and after.text == ADDRESS
    assert error_frames.new == 0


@contextmanager
def dynamodb_paused(stack: LocalStack) -> Iterator[None]:
    """DynamoDB Local stops answering (SIGSTOP): requests hang until the client's read timeout."""
    assert stack.engine is not None and stack.engine.pid is not None
    os.kill(stack.engine.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(stack.engine.pid, signal.SIGCONT)


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dynamodb_unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The handlers' DynamoDB endpoint refuses connections (a cold start with a dead endpoint)."""
    saved = os.environ[names.DYNAMODB_ENDPOINT_URL]

    def rebuild() -> None:
        load_settings.cache_clear()
        aws_clients.reset_clients()
        for factory in (wiring.session_store, wiring.sender, wiring.relay):
            factory.cache_clear()

    monkeypatch.setenv(names.DYNAMODB_ENDPOINT_URL, f"http://127.0.0.1:{dead_port()}")
    rebuild()
    try:
        yield
    finally:
        monkeypatch.setenv(names.DYNAMODB_ENDPOINT_URL, saved)
        rebuild()


def test_dynamodb_paused_for_a_whole_turn_is_an_apology_then_the_call_goes_on(
    stack: LocalStack, error_frames: ErrorFrames
) -> None:
    assert stack.engine is not None
    if stack.engine.kind != "dynamodb-local":
        pytest.skip("pausing needs DynamoDB Local (a process); moto runs in this one")
    outage, after, took = two_turns(stack, lambda: dynamodb_paused(stack))
    assert outage.completed and outage.text == APOLOGY
    # botocore's read timeout (2 s) times its attempts (3): bounded, inside the 29 s limit.
    assert took < 15, took
    # A real answer. The question the outage answered only with the apology is still among the
    # caller's unanswered words (its generation update was applied when DynamoDB resumed), so the
    # model sees both questions; the demo model answers one of them.
    assert after.completed and after.text in (ADDRESS, HOURS), after.text
    assert error_frames.new == 0


def test_dynamodb_unreachable_for_a_whole_turn_is_an_apology_then_the_call_goes_on(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, error_frames: ErrorFrames
) -> None:
    outage, after, took = two_turns(stack, lambda: dynamodb_unreachable(monkeypatch))
    assert outage.completed and outage.text == APOLOGY
    assert took < 10, took
    assert after.completed and after.text == ADDRESS
    assert error_frames.new == 0


def test_dynamodb_failing_at_setup_restarts_the_session_through_action_and_the_call_goes_on(
    stack: LocalStack, error_frames: ErrorFrames
) -> None:
    # Every attempt botocore makes to bind the socket fails; the next request (/action's reconnect
    # count) succeeds. Without the restart the socket would stay mute: every prompt ignored.
    assert stack.urls.voice is not None
    fault = FaultInjector(lambda: dynamodb_error("InternalServerError", 500), times=3)
    replies: list[Reply] = []

    async def first(session: RelaySession) -> None:
        await session.wait_ended(20)  # the agent ends the session: nothing else to do on it

    async def resumed(session: RelaySession) -> None:
        replies.append(await say(session, "When are you open?"))

    with injected(aws_clients.dynamodb(), "before-send.dynamodb.UpdateItem", only_binding(fault)):
        call = run(place_call(stack.urls.voice, AUTH_TOKEN, first, resumed), timeout_s=60)
    assert fault.injected == 3
    result = call.result
    assert result.protocol_errors == [], call.explain()
    first_session, second_session = result.sessions
    assert first_session.end is not None and first_session.end.status == "ended"
    assert second_session.relay.welcome_greeting == AGENT.lines.reconnect_greeting
    [answer] = replies
    assert answer.completed and answer.text == HOURS
    assert result.outcome == "hung_up"
    assert error_frames.new == 0


def test_dynamodb_down_from_setup_to_action_hands_the_caller_to_a_person(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, error_frames: ErrorFrames
) -> None:
    assert stack.urls.voice is not None

    async def first(session: RelaySession) -> None:
        await session.wait_ended(20)

    with dynamodb_unreachable(monkeypatch):
        call = run(place_call(stack.urls.voice, AUTH_TOKEN, first), timeout_s=60)
    result = call.result
    assert result.protocol_errors == [], call.explain()
    assert result.outcome == "transferred", call.explain()  # no reconnect loop without a count
    assert result.dial_target == AGENT.transfer_target
    assert error_frames.new == 0
