"""The turn's fast path (issue 6): what runs beside what, and the orderings the caller relies on.

- A turn on a connection this environment knows reads the history while it takes the generation.
- The first phrase is posted while its claim is in flight; the claim still lands before an
  interrupt for that phrase can exist (one needs the caller to have heard it).
- The reply is stored before ``last`` goes out, so the next prompt's history always holds it.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any, cast

import pytest

from tests.integration.conftest import RequestCounter
from tests.integration.test_turn_engine import CONN, LONG, SETUP, budget, engine_for
from tests.support.fakes import RecordingSender, ScriptedModel, ScriptedReply, words
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT
from voice_agent.core.history import assemble_history
from voice_agent.core.model import GREETING_GENERATION, TurnKey, TurnRecord, TurnTicket
from voice_agent.core.relay import Relay
from voice_agent.core.turn_engine import Budget, TurnEngine, TurnOutcome
from voice_agent.protocol.outbound import Text
from voice_agent.wiring import tool_registry

CALL = SETUP.call_sid
WAIT_S = 1.0  # how long a probe waits for something that should happen at once


@pytest.fixture
def bound(store: DynamoSessionStore) -> DynamoSessionStore:
    store.bind_connection(CONN, SETUP)
    return store


class Overlap:
    """Wraps the real store; ``start_turn`` holds until the history query has started (or
    ``WAIT_S`` passed), and ``claim_phrase`` until a send has started: records what overlapped."""

    def __init__(self, inner: DynamoSessionStore, sender: RecordingSender) -> None:
        self.inner = inner
        self.history_started = threading.Event()
        self.sent = threading.Event()
        self.history_during_start_turn: bool | None = None
        self.send_during_first_claim: bool | None = None
        sender.on_send = self._on_send

    def _on_send(self, connection_id: str, message: object) -> None:
        self.sent.set()

    def start_turn(self, connection_id: str) -> TurnTicket | None:
        self.history_during_start_turn = self.history_started.wait(WAIT_S)
        return self.inner.start_turn(connection_id)

    def load_history(self, call_sid: str, max_items: int) -> list[TurnRecord]:
        self.history_started.set()
        return self.inner.load_history(call_sid, max_items)

    def claim_phrase(self, ticket: TurnTicket) -> bool:
        if self.send_during_first_claim is None:
            self.send_during_first_claim = self.sent.wait(WAIT_S)
        return self.inner.claim_phrase(ticket)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def as_store(self) -> DynamoSessionStore:
        return cast(DynamoSessionStore, self)


def test_a_known_call_reads_its_history_while_taking_the_generation(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, requests: RequestCounter
) -> None:
    model.say("First answer.", "Second answer.")
    probe = Overlap(bound, sender)
    engine = engine_for(probe.as_store, sender, model)
    engine.run_prompt(CONN, "First question", budget())
    without_hint = probe.history_during_start_turn
    probe.history_started.clear()
    requests.reset()
    outcome = engine.run_prompt(CONN, "Second question", budget(), call_sid=CALL)
    assert without_hint is False  # no hint: the generation first, then the history
    assert probe.history_during_start_turn is True
    assert outcome.status == "completed"
    assert [(m.role, m.content) for m in model.requests[1].messages[1:]] == [
        ("user", "First question"),
        ("assistant", "First answer."),
        ("user", "Second question"),
    ]
    assert requests.by_operation() == {"UpdateItem": 1 + outcome.posts, "Query": 1, "PutItem": 2}


def test_a_wrong_hint_never_gives_a_wrong_history(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    bound.put_turns("CA-other", [TurnRecord(key=TurnKey(1, 1, 0), role="user", text="someone else")])
    model.say("Hello.")
    engine_for(bound, sender, model).run_prompt(CONN, "Hi", budget(), call_sid="CA-other")
    # The connection item names the call; the history read for the hint is dropped.
    assert [(m.role, m.content) for m in model.requests[0].messages[1:]] == [("user", "Hi")]


def test_a_hint_that_beat_its_setup_is_read_again_after_it(
    store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    # The relay learns the call from the setup frame before the setup has stored anything; a
    # prompt racing it must not use a history read before the greeting was stored.
    def late_setup() -> None:
        session = store.bind_connection(CONN, SETUP)
        key = TurnKey(session.conn_seq, GREETING_GENERATION, 1)
        store.put_turns(CALL, [TurnRecord(key=key, role="assistant", text=AGENT.lines.welcome_greeting)])

    model.say("Hello!")
    engine = TurnEngine(store=store, sender=sender, model=lambda: model, agent=AGENT, tools=tool_registry())
    timer = threading.Timer(0.3, late_setup)
    timer.start()
    try:
        outcome = engine.run_prompt(CONN, "Hello?", budget(), call_sid=CALL)
    finally:
        timer.join()
    assert outcome.status == "completed"
    assert [(m.role, m.content) for m in model.requests[0].messages[1:]] == [
        ("assistant", AGENT.lines.welcome_greeting),
        ("user", "Hello?"),
    ]


def test_the_first_phrase_is_posted_while_its_claim_is_in_flight(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    model.say(LONG)
    probe = Overlap(bound, sender)
    outcome = engine_for(probe.as_store, sender, model).run_prompt(CONN, "Hours?", budget())
    assert probe.send_during_first_claim is True
    assert outcome.status == "completed"
    assert sender.spoken(CONN) == LONG


def test_the_first_phrase_can_wait_for_its_claim(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    model.say(LONG)
    probe = Overlap(bound, sender)
    agent = dataclasses.replace(AGENT, first_phrase_waits_for_claim=True)
    engine = TurnEngine(store=probe.as_store, sender=sender, model=lambda: model, agent=agent, tools=tool_registry())
    started = time.monotonic()
    outcome = engine.run_prompt(CONN, "Hours?", budget())
    assert probe.send_during_first_claim is False
    assert time.monotonic() - started >= WAIT_S  # the claim waited for a send that never came first
    assert outcome.status == "completed"


def test_a_barge_in_on_the_first_phrase_stops_the_reply(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    # An interrupt exists only after the caller heard the phrase (text-to-speech, speech, speech
    # recognition: hundreds of milliseconds); by then the first claim has recorded the generation
    # on the air, so the interrupt cancels this reply rather than passing it by.
    model.replies.append(ScriptedReply(tokens=words(LONG * 2), token_delay_s=0.02))
    heard_after_s = 0.05

    def barge_in(connection_id: str, message: object) -> None:
        if len(sender.messages) == 1:
            threading.Timer(heard_after_s, bound.record_interrupt, args=(CONN, "Our", 50)).start()

    sender.on_send = barge_in
    outcome = engine_for(bound, sender, model).run_prompt(CONN, "Tell me everything", budget())
    assert outcome.status == "interrupted"
    assert not any(t.last for t in sender.texts(CONN))
    assert model.closed == 1


def test_the_reply_is_stored_before_last_goes_out(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    model.say(LONG)
    stored_at_last: list[str] = []

    def on_send(connection_id: str, message: object) -> None:
        if isinstance(message, Text) and message.last:
            history = assemble_history(bound.load_history(CALL, 50))
            stored_at_last.extend(m.content for m in history if m.role == "assistant")

    sender.on_send = on_send
    outcome = engine_for(bound, sender, model).run_prompt(CONN, "Hours?", budget())
    assert outcome.status == "completed"
    assert stored_at_last == [LONG]
    # Stored once, not again after ``last``.
    assistant = [r for r in bound.load_history(CALL, 50) if r.role == "assistant"]
    assert [r.text for r in assistant] == [LONG]


def test_the_relay_passes_the_call_it_knows(store: DynamoSessionStore, sender: RecordingSender) -> None:
    hints: list[str | None] = []

    class Spy(TurnEngine):
        def run_prompt(
            self, connection_id: str, text: str, budget: Budget, *, call_sid: str | None = None
        ) -> TurnOutcome:
            hints.append(call_sid)
            return TurnOutcome(status="completed")

    model = ScriptedModel()
    engine = Spy(store=store, sender=sender, model=lambda: model, agent=AGENT, tools=tool_registry())
    relay = Relay(store=store, engine=engine, sender=sender, agent=AGENT, warm_model=model.warm)
    prompt = '{"type": "prompt", "voicePrompt": "Hi", "last": true}'
    relay.handle("fresh", prompt, budget())
    relay.handle(CONN, json.dumps({"type": "setup", "sessionId": "VX1", "callSid": CALL}), budget())
    relay.handle(CONN, prompt, budget())
    relay.forget_calls()
    relay.handle(CONN, prompt, budget())
    assert hints == [None, CALL, None]
