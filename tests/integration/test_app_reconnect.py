"""Twilio's application reconnect, in every shape its documentation leaves open (docs/protocol.md):
a new socket with a setup of the same session, with a setup of a new session, or with no setup at
all; the events it buffered replayed on it. The relay, the turn engine and the store on moto."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.test_turn_engine import budget, engine_for
from tests.support.fakes import RecordingSender, ScriptedModel
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT
from voice_agent.core.budget import SystemClock
from voice_agent.core.model import ChatRequest
from voice_agent.core.relay import HandledFrame, Relay
from voice_agent.core.turn_engine import TurnEngine
from voice_agent.core.turn_states import TurnStatus
from voice_agent.errors import ConnectionGoneError
from voice_agent.protocol.outbound import OutboundMessage
from voice_agent.wiring import tool_registry

CALL = "CA" + "5" * 32
QUESTION = "Is order 1001 ready for pickup?"


def setup_frame(session_id: str = "VX1") -> str:
    return json.dumps({"type": "setup", "sessionId": session_id, "callSid": CALL, "direction": "inbound"})


def prompt(text: str) -> str:
    return json.dumps({"type": "prompt", "voicePrompt": text, "last": True, "lang": "en-US"})


class SkipClock:
    """Real time, except that sleeping skips ahead (a relay following a reconnect waits no time)."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.skipped

    def sleep(self, seconds: float) -> None:
        self.skipped += seconds


@pytest.fixture
def relay(store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel) -> Relay:
    engine = engine_for(store, sender, model)
    return Relay(store=store, engine=engine, sender=sender, agent=AGENT, warm_model=model.warm, clock=SkipClock())


def greetings(store: DynamoSessionStore) -> list[str]:
    return [r.text for r in store.load_history(CALL, 50) if r.role == "assistant" and r.key.generation == 0]


def user_messages(request: ChatRequest) -> list[str]:
    return [m.content for m in request.messages if m.role == "user"]


def cut_mid_reply(relay: Relay, store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel) -> None:
    """Socket c1 asks the question; its reply is cut by the drop after its first words."""
    store.prebind_connection("c1", CALL, 0)
    relay.handle("c1", setup_frame(), budget())
    sender.gone_after = len(sender.messages) + 1  # the first phrase goes out, then the socket is gone
    model.say("Let me check that for you. Order one zero zero one is ready at the counter.")
    handled = relay.handle("c1", prompt(QUESTION), budget())
    assert handled.outcome is not None and handled.outcome.status == TurnStatus.GONE
    sender.gone_after = None


def test_a_new_setup_of_the_same_session_records_no_greeting_and_answers_the_cut_turn(
    relay: Relay, store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    cut_mid_reply(relay, store, sender, model)
    model.say("Yes, order one zero zero one is ready at the counter.")
    store.prebind_connection("c2", CALL, 0)  # the same <Connect>'s URL, upgraded again
    handled = relay.handle("c2", setup_frame("VX1"), budget())
    assert handled.outcome is not None and handled.outcome.status == TurnStatus.COMPLETED
    assert "ready at the counter" in sender.spoken("c2")  # answered without the caller repeating it
    assert greetings(store) == [AGENT.lines.welcome_greeting]  # Twilio spoke no greeting on c2
    request = model.requests[-1]
    assert QUESTION in user_messages(request)[-2]  # the question, then the note asking to answer it
    assert user_messages(request)[-1] == AGENT.lines.resume_note
    assert any("Let me check" in m.content for m in request.messages if m.role == "assistant")  # what was heard


def test_a_new_setup_of_a_new_session_is_recognised_by_connect_and_answers_the_cut_turn(
    relay: Relay, store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    cut_mid_reply(relay, store, sender, model)
    model.say("Yes, it is ready.")
    store.prebind_connection("c2", CALL, 0)
    handled = relay.handle("c2", setup_frame("VX-new"), budget())
    assert handled.outcome is not None and handled.outcome.status == TurnStatus.COMPLETED
    assert greetings(store) == [AGENT.lines.welcome_greeting]


def test_without_connects_note_the_same_session_id_still_tells_an_application_reconnect(
    relay: Relay, store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    cut_mid_reply(relay, store, sender, model)
    model.say("Yes, it is ready.")
    relay.handle("c2", setup_frame("VX1"), budget())  # no $connect note (e.g. the store was down then)
    assert greetings(store) == [AGENT.lines.welcome_greeting]
    assert "ready" in sender.spoken("c2")


def test_with_no_setup_the_socket_is_bound_by_its_first_message_and_a_replay_is_answered_once(
    relay: Relay, store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    cut_mid_reply(relay, store, sender, model)
    store.prebind_connection("c2", CALL, 0)
    model.say("Yes, order one zero zero one is ready.")
    # Twilio sends no setup on the new socket, and replays the prompt it was not sure c1 got.
    handled = relay.handle("c2", prompt(QUESTION), budget())
    assert handled.outcome is not None and handled.outcome.status == TurnStatus.COMPLETED
    assert sender.spoken("c2").count("ready") == 1
    assert len(model.requests) == 2  # the cut reply, and one answer on the new socket: not two
    assert user_messages(model.requests[-1]).count(QUESTION) <= 1  # not a second unanswered message
    # A second copy of the replay changes nothing more... the caller saying it again is answered.
    model.say("Still ready, yes.")
    again = relay.handle("c2", prompt(QUESTION), budget())
    assert again.outcome is not None and again.outcome.status == TurnStatus.COMPLETED
    assert len(model.requests) == 3
    assert greetings(store) == [AGENT.lines.welcome_greeting]


def test_with_no_setup_a_new_message_is_answered_and_covers_what_was_cut(
    relay: Relay, store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    cut_mid_reply(relay, store, sender, model)
    store.prebind_connection("c2", CALL, 0)
    model.say("It is ready, and we open at nine.")
    handled = relay.handle("c2", prompt("And when do you open tomorrow?"), budget())
    assert handled.outcome is not None and handled.outcome.status == TurnStatus.COMPLETED
    assert user_messages(model.requests[-1])[-1].endswith("And when do you open tomorrow?")
    assert QUESTION in " ".join(user_messages(model.requests[-1]))
    assert store.take_owed("c2") is None  # the new message's turn took over what was owed


def test_a_socket_that_is_not_an_application_reconnect_waits_for_its_setup(
    relay: Relay, store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    store.prebind_connection("c1", CALL, 0)
    handled: HandledFrame = relay.handle("c1", prompt(QUESTION), budget(3.0))
    assert handled.outcome is not None and handled.outcome.status == TurnStatus.UNKNOWN_CONNECTION
    assert model.requests == []


def test_an_interrupt_replayed_before_the_new_sockets_first_reply_writes_nothing(
    relay: Relay, store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    cut_mid_reply(relay, store, sender, model)
    store.prebind_connection("c2", CALL, 0)
    model.say("Yes, it is ready.")
    relay.handle("c2", setup_frame("VX1"), budget())
    before = store.load_history(CALL, 50)
    interrupt = json.dumps({"type": "interrupt", "utteranceUntilInterrupt": "Let me", "durationUntilInterruptMs": 300})
    store.prebind_connection("c3", CALL, 0)
    relay.handle("c3", setup_frame("VX1"), budget())  # another reconnect: its socket has spoken nothing yet
    relay.handle("c3", interrupt, budget())
    markers = [r for r in store.load_history(CALL, 50) if r.role == "interruption" and r.key.conn_seq == 3]
    assert markers == []
    assert len(store.load_history(CALL, 50)) >= len(before)


def test_an_action_resume_is_not_an_application_reconnect(
    relay: Relay, store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    cut_mid_reply(relay, store, sender, model)
    store.prebind_connection("c2", CALL, 1)  # /action's new <Connect> (session 1)
    handled = relay.handle("c2", setup_frame("VX2"), budget())
    assert handled.outcome is None  # nothing owed: the reconnect greeting asks where they were
    assert greetings(store) == [AGENT.lines.welcome_greeting, AGENT.lines.reconnect_greeting]


def test_a_prompt_that_overtakes_a_resumed_sockets_setup_waits_for_the_handover_and_its_greeting(
    store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/action resumed the call on c2 while c1's reply was on the air, not yet stored as heard (c1's
    turn notices the drop only at its next post). The caller's first words on c2 reach a turn while
    c2's setup is still handing over: c2 is ``binding`` until the setup has marked what c1 had said
    and stored the reconnect greeting, so the turn waits, and its model request holds both."""
    engine = TurnEngine(
        store=store, sender=sender, model=lambda: model, agent=AGENT, tools=tool_registry(), clock=SystemClock()
    )
    relay = Relay(store=store, engine=engine, sender=sender, agent=AGENT, warm_model=model.warm)
    store.prebind_connection("c1", CALL, 0)
    relay.handle("c1", setup_frame(), budget())
    ticket = store.start_turn("c1", QUESTION)
    assert ticket is not None
    store.put_turns(CALL, [TurnEngine.user_record(ticket, QUESTION)])
    assert store.claim_phrase(ticket, "Let me check that for you.")  # on the air when c1 drops

    handing_over, release = threading.Event(), threading.Event()
    hand_over = store._sockets.hand_over

    def slow_hand_over(*args: Any, **kwargs: Any) -> Any:
        handing_over.set()
        release.wait(5)
        return hand_over(*args, **kwargs)

    monkeypatch.setattr(store._sockets, "hand_over", slow_hand_over)
    model.say("Yes, it is ready at the counter.")
    store.prebind_connection("c2", CALL, 1)  # /action's new <Connect>
    with ThreadPoolExecutor(2) as pool:
        setup = pool.submit(relay.handle, "c2", setup_frame("VX2"), budget())
        assert handing_over.wait(5)  # c2's item is written; the handover has not started
        answered = pool.submit(relay.handle, "c2", prompt("Hello? Is it ready?"), budget())
        time.sleep(0.1)
        release.set()
        setup.result(5)
        handled = answered.result(10)

    assert handled.outcome is not None and handled.outcome.status == TurnStatus.COMPLETED
    [request] = model.requests
    said = [m.content for m in request.messages if m.role == "assistant"]
    assert "Let me check that for you." in said
    assert AGENT.lines.reconnect_greeting in said
    assert user_messages(request)[-1] == "Hello? Is it ready?"


class GoneAfterFirst(RecordingSender):
    """One socket (``c1``) goes away after its first frame; the others are fine."""

    def send(self, connection_id: str, message: OutboundMessage) -> None:
        if connection_id == "c1" and self.for_connection("c1"):
            raise ConnectionGoneError(connection_id)
        super().send(connection_id, message)


def test_with_no_setup_and_nothing_replayed_the_cut_turn_follows_the_call_to_its_new_socket(
    store: DynamoSessionStore, model: ScriptedModel
) -> None:
    sender = GoneAfterFirst()
    engine = engine_for(store, sender, model)
    relay = Relay(store=store, engine=engine, sender=sender, agent=AGENT, warm_model=model.warm, clock=SkipClock())
    store.prebind_connection("c1", CALL, 0)
    relay.handle("c1", setup_frame(), budget())
    model.say("Let me check that for you. Order one zero zero one is ready at the counter.")
    model.say("Yes, order one zero zero one is ready.")
    # Twilio reopens the socket before the cut turn notices; it sends nothing on it.
    store.prebind_connection("c2", CALL, 0)
    handled = relay.handle("c1", prompt(QUESTION), budget())
    assert handled.outcome is not None and handled.outcome.status == TurnStatus.COMPLETED
    assert "is ready" in sender.spoken("c2")
    assert greetings(store) == [AGENT.lines.welcome_greeting]


def test_a_caller_who_hung_up_mid_reply_is_not_followed(
    store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    relay = Relay(
        store=store, engine=engine_for(store, sender, model), sender=sender, agent=AGENT, warm_model=model.warm
    )
    store.prebind_connection("c1", CALL, 0)
    relay.handle("c1", setup_frame(), budget())
    sender.gone_after = len(sender.messages) + 1
    sender.on_send = lambda cid, _: store.close_connection(cid, gone=False, code=1000)  # Twilio closes with 1000
    model.say("Let me check that for you. Order one zero zero one is ready at the counter.")
    started = time.monotonic()
    handled = relay.handle("c1", prompt(QUESTION), budget())
    assert handled.outcome is not None and handled.outcome.status == TurnStatus.GONE
    assert time.monotonic() - started < 1.0  # no waiting for a socket that is not coming back
