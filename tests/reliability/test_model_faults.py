"""The language model fails in every way a hosted model does: the caller hears a short apology (or
the reply cut to its bound), never silence and never an error frame, and the next turn is answered
as if nothing happened."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from local.caller.phone import RelaySession, Reply
from local.demo_model import ABOUT, HOURS
from local.openai_server import Reply as ModelReply
from local.openai_server import split_tokens
from local.stack import LocalStack
from tests.e2e.conftest import run
from tests.reliability.conftest import AUTH_TOKEN, ErrorFrames
from tests.support.local_calls import RoutingBrain, place_call, say
from voice_agent import env_names as names
from voice_agent import wiring
from voice_agent.agent.config import AGENT
from voice_agent.settings import load_settings

APOLOGY = AGENT.lines.apology
# A reply far past every bound: about 12,000 characters (the guard allows max_reply_chars).
ENDLESS = " ".join(f"Here is more about our store, part {n}, with tools and paint." for n in range(150))

FAULTS: dict[str, list[ModelReply]] = {
    # An error status, on the request and on the SDK's one retry.
    "status": [ModelReply(fault="status", status=500)] * 3,
    "throttled": [ModelReply(fault="status", status=429)] * 3,
    # The connection closes before any response.
    "dropped": [ModelReply(fault="drop")] * 3,
    # The stream stops half-way: no finish reason, no [DONE].
    "cut": [ModelReply(tokens=split_tokens(ABOUT), fault="cut", cut_after=12)],
    # Headers, then nothing: the read timeout / first-token timeout fires.
    "silent": [ModelReply(fault="stall")] * 2,
}


def call_with_a_fault(stack: LocalStack, marker: str) -> tuple[Reply, Reply, float]:
    """One call: a prompt the model fails on, then an ordinary one. Returns both replies and how
    long the failed turn took."""
    assert stack.urls.voice is not None
    replies: list[Reply] = []
    took: list[float] = []

    async def program(session: RelaySession) -> None:
        started = time.monotonic()
        replies.append(await say(session, f"Hello, {marker} speaking. Tell me about the store.", timeout_s=30))
        took.append(time.monotonic() - started)
        replies.append(await say(session, "When are you open?"))

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, program), timeout_s=60)
    assert call.result.protocol_errors == [], call.explain()
    assert call.result.outcome == "hung_up", call.explain()
    return replies[0], replies[1], took[0]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_model_failure_is_an_apology_and_the_call_goes_on(
    stack: LocalStack, brain: RoutingBrain, error_frames: ErrorFrames, fault: str
) -> None:
    marker = f"model{fault}fault"
    brain.script(marker, *FAULTS[fault])
    failed, after, took = call_with_a_fault(stack, marker)
    assert brain.pending(marker) < len(FAULTS[fault])  # the fault was served
    assert failed.completed, failed.text  # closed with last: true
    assert failed.text.endswith(APOLOGY)
    if fault == "cut":
        # The phrases that streamed before the break were spoken (an unfinished one is dropped);
        # the apology follows them.
        before = failed.text.removesuffix(APOLOGY).rstrip()
        assert before and ABOUT.startswith(before) and len(before.split()) <= 12
    else:
        assert failed.text == APOLOGY
    assert took < AGENT.llm_first_token_timeout_s + 5  # bounded: well inside API Gateway's 29 s
    assert after.completed and after.text == HOURS  # the call goes on
    assert error_frames.new == 0


def test_a_reply_far_longer_than_the_limits_is_cut_at_a_word_and_closed(
    stack: LocalStack, brain: RoutingBrain, error_frames: ErrorFrames
) -> None:
    brain.script("modelendless", ModelReply(tokens=split_tokens(ENDLESS), token_interval_s=0.0))
    long, after, _ = call_with_a_fault(stack, "modelendless")
    assert long.completed
    assert len(long.text) <= AGENT.max_reply_chars
    assert len(long.text) > AGENT.max_reply_chars * 0.8
    assert ENDLESS.startswith(long.text[:-1].rstrip(" ,;:.")) and long.text.endswith(".")
    assert sum(1 for f in long.frames if f.last) == 1
    assert after.completed and after.text == HOURS
    assert error_frames.new == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def model_at(base_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the running handlers at another model address (a cold start with other settings)."""
    saved = load_settings().openai_base_url
    monkeypatch.setenv(names.OPENAI_BASE_URL, base_url)
    load_settings.cache_clear()
    wiring.chat_model.cache_clear()
    try:
        yield
    finally:
        monkeypatch.setenv(names.OPENAI_BASE_URL, saved or "")
        load_settings.cache_clear()
        wiring.chat_model.cache_clear()


def test_a_refused_connection_to_the_model_is_an_apology(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, error_frames: ErrorFrames
) -> None:
    assert stack.urls.voice is not None
    replies: list[Reply] = []

    async def program(session: RelaySession) -> None:
        with model_at(f"http://127.0.0.1:{free_port()}/v1", monkeypatch):  # nothing listens there
            replies.append(await say(session, "Hello, is anyone there? Tell me about the store."))
        replies.append(await say(session, "When are you open?"))

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, program), timeout_s=60)
    assert call.result.protocol_errors == [], call.explain()
    refused, after = replies
    assert refused.completed and refused.text == APOLOGY
    assert after.completed and after.text == HOURS
    assert error_frames.new == 0
