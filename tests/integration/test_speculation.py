"""Speculative turns (issue 15): a partial prompt starts the model, the final prompt decides.

Each frame is its own invocation, so the partial's invocation runs on a helper thread here while
the final prompt's runs on the test's own, both through the real relay, engine and store (moto).
Nothing here is timed: the tests wait for states (a model request out, a reply finished) and
count what was sent and stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.integration.conftest import RequestCounter
from tests.integration.test_turn_engine import CONN, SETUP, budget, engine_for
from tests.support.fakes import RecordingSender, ScriptedModel, ScriptedReply, words
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT
from voice_agent.agent.preemption import Preemption
from voice_agent.core.model import TurnKey, TurnRecord
from voice_agent.core.relay import HandledFrame, Relay
from voice_agent.core.speculation import SpeculationStats, Speculator
from voice_agent.core.speculation_rules import SpecState
from voice_agent.core.turn_states import TurnStatus
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.outbound import Text

FAST = Preemption(stable_s=0.03, stable_punctuated_s=0.01, max_wait_s=3.0, poll_s=0.01)
WAIT_S = 5.0


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="invocation") as p:
        yield p


@pytest.fixture
def bound(store: DynamoSessionStore) -> DynamoSessionStore:
    store.bind_connection(CONN, SETUP)
    return store


def relay_for(
    store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, config: Preemption = FAST
) -> tuple[Relay, SpeculationStats]:
    engine = engine_for(store, sender, model)
    stats = SpeculationStats()
    speculator = Speculator(store=store, engine=engine, config=config, stats=stats)
    relay = Relay(store=store, engine=engine, sender=sender, agent=AGENT, warm_model=model.warm, speculator=speculator)
    return relay, stats


def prompt(text: str, *, last: bool) -> str:
    return json.dumps({"type": "prompt", "voicePrompt": text, "lang": "en-US", "last": last})


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def said(sender: RecordingSender, connection_id: str = CONN) -> str:
    return "".join(m.token for c, m in sender.messages if c == connection_id and isinstance(m, Text))


def partial_in_background(pool: ThreadPoolExecutor, relay: Relay, text: str, conn: str = CONN) -> Future[HandledFrame]:
    return pool.submit(relay.handle, conn, prompt(text, last=False), budget())


def test_a_confirmed_speculation_speaks_from_the_tokens_it_held(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, pool: ThreadPoolExecutor
) -> None:
    model.say("We open at nine tomorrow.")
    relay, stats = relay_for(bound, sender, model)
    speculating = partial_in_background(pool, relay, "When do you open tomorrow?")
    until(lambda: model.tokens_streamed == len(words("We open at nine tomorrow.")))
    assert said(sender) == ""  # every token held, nothing sent before the final prompt

    final = relay.handle(CONN, prompt("when do you open tomorrow", last=True), budget())
    spoken = speculating.result(WAIT_S)

    assert final.outcome is not None and final.outcome.status == TurnStatus.SPECULATED
    assert spoken.outcome is not None and spoken.outcome.status == TurnStatus.COMPLETED
    assert said(sender) == "We open at nine tomorrow."
    assert sender.messages[-1][1] == Text("", last=True) or getattr(sender.messages[-1][1], "last", False)
    assert len(model.requests) == 1  # the held request was the reply: no second one
    history = bound.load_history(SETUP.call_sid, 20)
    assert [(r.role, r.text) for r in history if r.role in ("user", "assistant")][-2:] == [
        ("user", "when do you open tomorrow"),  # the final prompt's words are what is stored
        ("assistant", "We open at nine tomorrow."),
    ]
    assert stats.snapshot()["ended"] == {SpecState.CONFIRMED: 1}
    assert stats.tokens_unspoken == 0
    assert bound.read_connection(CONN) is not None
    assert bound.read_connection(CONN).spec is None  # type: ignore[union-attr]  # the slot is removed


def test_a_final_prompt_with_other_words_supersedes_it(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, pool: ThreadPoolExecutor
) -> None:
    model.say("We open at nine.", "We close at six.")
    relay, stats = relay_for(bound, sender, model)
    speculating = partial_in_background(pool, relay, "When do you open")
    until(lambda: model.tokens_streamed >= 2)

    final = relay.handle(CONN, prompt("When do you close?", last=True), budget())
    speculating.result(WAIT_S)

    assert final.outcome is not None and final.outcome.status == TurnStatus.COMPLETED
    assert said(sender) == "We close at six."  # nothing of the speculation was heard
    assert model.requests[1].messages[-1].content == "When do you close?"
    assert stats.snapshot()["ended"] == {SpecState.SUPERSEDED: 1}
    assert stats.tokens_unspoken >= 2
    history = bound.load_history(SETUP.call_sid, 20)
    assert "We open at nine." not in [r.text for r in history]


def test_a_newer_partial_with_other_words_cancels_it(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, pool: ThreadPoolExecutor
) -> None:
    model.say("We open at nine.", "On Sundays we are closed.")
    relay, stats = relay_for(bound, sender, model)
    first = partial_in_background(pool, relay, "When do you open")
    until(lambda: len(model.requests) == 1)
    second = partial_in_background(pool, relay, "When do you open on Sundays")
    assert first.result(WAIT_S).ignored  # cancelled: it said nothing
    until(lambda: len(model.requests) == 2)

    final = relay.handle(CONN, prompt("When do you open on Sundays?", last=True), budget())
    second.result(WAIT_S)

    assert final.outcome is not None and final.outcome.status == TurnStatus.SPECULATED
    assert said(sender) == "On Sundays we are closed."
    assert stats.snapshot()["ended"] == {SpecState.CANCELLED: 1, SpecState.CONFIRMED: 1}


def test_an_interrupt_during_a_speculation_leaves_the_final_to_an_ordinary_turn(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, pool: ThreadPoolExecutor
) -> None:
    model.say("Hello there.", "We open at nine.", "Fresh answer.")
    relay, stats = relay_for(bound, sender, model)
    relay.handle(CONN, prompt("Hi", last=True), budget())  # a reply on the air, sent in full
    speculating = partial_in_background(pool, relay, "When do you open")
    until(lambda: len(model.requests) == 2)
    # The caller talks over the agent's last reply: Twilio's interrupt takes a generation.
    relay.handle(CONN, json.dumps({"type": "interrupt", "utteranceUntilInterrupt": "Hello"}), budget())
    assert speculating.result(WAIT_S).ignored

    final = relay.handle(CONN, prompt("When do you open", last=True), budget())
    assert final.outcome is not None and final.outcome.status == TurnStatus.COMPLETED
    assert said(sender) == "Hello there.Fresh answer."
    assert stats.snapshot()["ended"] == {SpecState.SUPERSEDED: 1}


def test_a_newer_final_prompt_after_the_confirmed_one_takes_over(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, pool: ThreadPoolExecutor
) -> None:
    # The speculation is confirmed but held back (slow tokens); a second final prompt arrives:
    # the speculation's claims fail and only the newer turn's reply goes out after that.
    model.replies.append(ScriptedReply(tokens=words("We open at nine, every day of the week."), token_delay_s=0.05))
    model.say("Bye for now.")
    relay, _ = relay_for(bound, sender, model)
    speculating = partial_in_background(pool, relay, "When do you open")
    until(lambda: len(model.requests) == 1)
    relay.handle(CONN, prompt("When do you open", last=True), budget())
    newer = relay.handle(CONN, prompt("Never mind, goodbye", last=True), budget())
    old = speculating.result(WAIT_S)
    assert newer.outcome is not None and newer.outcome.status == TurnStatus.COMPLETED
    # Either it saw its confirmation and then lost its claims, or it saw only the newer turn (whose
    # words then include the confirmed ones, still unanswered): never both replies.
    assert old.outcome is None or old.outcome.status == TurnStatus.INTERRUPTED
    assert said(sender).endswith("Bye for now.")
    last_frames = [m for c, m in sender.messages if isinstance(m, Text) and m.last]
    assert len(last_frames) == 1  # one reply closed; the superseded one sent no ``last``
    # The newer turn's model hears the confirmed words (merged with the new ones if nothing of
    # their answer was heard yet), and the new words last.
    users = [m.content for m in model.requests[1].messages if m.role == "user"]
    assert users[0].startswith("When do you open") and users[-1].endswith("Never mind, goodbye")


def test_a_speculation_whose_model_fails_leaves_the_final_an_ordinary_turn(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, pool: ThreadPoolExecutor
) -> None:
    model.replies.append(ScriptedReply(tokens=words("We"), error_at=1))
    model.say("We open at nine.")
    relay, stats = relay_for(bound, sender, model)
    partial_in_background(pool, relay, "When do you open").result(WAIT_S)
    final = relay.handle(CONN, prompt("When do you open?", last=True), budget())
    assert final.outcome is not None and final.outcome.status == TurnStatus.COMPLETED
    assert said(sender) == "We open at nine."
    assert stats.snapshot()["ended"] == {SpecState.FAILED: 1}


def test_two_concurrent_calls_each_hear_their_own_speculation(
    store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, pool: ThreadPoolExecutor
) -> None:
    calls = {"c1": "CA1", "c2": "CA2"}
    for conn, call in calls.items():
        store.bind_connection(conn, Setup(session_id=f"VX-{conn}", call_sid=call, direction="inbound"))
    relay, stats = relay_for(store, sender, model)  # no script: every reply is "Okay."
    speculating = {c: partial_in_background(pool, relay, f"Question from {c}", c) for c in calls}
    until(lambda: len(model.requests) == 2)
    finals = {c: pool.submit(relay.handle, c, prompt(f"Question from {c}.", last=True), budget()) for c in calls}
    for conn, call in calls.items():
        assert finals[conn].result(WAIT_S).outcome.status == TurnStatus.SPECULATED  # type: ignore[union-attr]
        assert speculating[conn].result(WAIT_S).outcome.status == TurnStatus.COMPLETED  # type: ignore[union-attr]
        assert said(sender, conn) == "Okay."
        users = [r.text for r in store.load_history(call, 20) if r.role == "user"]
        assert users == [f"Question from {conn}."]
    assert stats.snapshot()["ended"] == {SpecState.CONFIRMED: 2}


def test_preemption_off_ignores_partials_without_a_request(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, requests: RequestCounter
) -> None:
    engine = engine_for(bound, sender, model)
    relay = Relay(store=bound, engine=engine, sender=sender, agent=AGENT, warm_model=model.warm)
    requests.reset()
    assert relay.handle(CONN, prompt("When do you open", last=False), budget()).ignored
    assert requests.by_operation() == {}
    assert model.requests == []


def test_a_partial_during_a_turn_opens_nothing(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    # A turn has taken its generation and not spoken yet (its words unanswered): a partial now
    # belongs to the next utterance, which that turn's answer must come first.
    bound.start_turn(CONN, "Hello")
    relay, stats = relay_for(bound, sender, model)
    assert relay.handle(CONN, prompt("When do you open", last=False), budget()).ignored
    assert model.requests == []
    assert stats.opened == 0


def test_a_history_another_socket_changed_is_read_again_before_anything_is_said(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, pool: ThreadPoolExecutor
) -> None:
    """The call's second socket speculates while the first one's cut reply is still being stored
    (its turn notices the drop at its next post): the held answer, built without that reply, is
    dropped and the model asked again with it."""
    second = "conn-2"
    bound.bind_connection(second, Setup(session_id="VX2", call_sid=SETUP.call_sid))
    bound.open_connection(second)
    model.say("Stale answer.", "Fresh answer.")
    relay, stats = relay_for(bound, sender, model)
    speculating = partial_in_background(pool, relay, "When do you open tomorrow?", conn=second)
    until(lambda: model.tokens_streamed == len(words("Stale answer.")))
    cut = TurnRecord(key=TurnKey(1, 1, 2), role="assistant", text="We are a family hardware store")
    bound.put_turns(SETUP.call_sid, [cut])  # the first socket's reply, as heard, stored late

    final = relay.handle(second, prompt("When do you open tomorrow?", last=True), budget())
    spoken = speculating.result(WAIT_S)

    assert final.outcome is not None and final.outcome.status == TurnStatus.SPECULATED
    assert spoken.outcome is not None and spoken.outcome.status == TurnStatus.COMPLETED
    assert said(sender, second) == "Fresh answer."  # nothing built on the stale history was heard
    assert len(model.requests) == 2
    assert "We are a family hardware store" in [m.content for m in model.requests[1].messages]
    assert stats.snapshot()["ended"] == {SpecState.REREAD: 1}
    assert stats.tokens_unspoken == len(words("Stale answer."))
