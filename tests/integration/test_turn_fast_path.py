"""The turn's fast path (issue 6): what runs beside what, and the orderings the caller relies on.

- A turn on a connection this environment knows reads the history while it takes the generation.
- Every phrase, the first included, is posted only once its claim has landed: a claim beside the
  post (tried for speed) let a slow claim pass an interrupt by, and a superseded turn speak.
- The reply is stored before ``last`` goes out, so the next prompt's history always holds it; if
  the claim or the send fails, the stored reply is what the caller heard.
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
from voice_agent.agent.preemption import Preemption
from voice_agent.core.budget import Budget
from voice_agent.core.history import assemble_history
from voice_agent.core.model import GREETING_GENERATION, ToolCall, TurnKey, TurnRecord, TurnTicket
from voice_agent.core.relay import Relay
from voice_agent.core.turn_engine import TurnEngine
from voice_agent.core.turn_states import TurnOutcome, TurnStatus
from voice_agent.errors import ConnectionGoneError, SendError
from voice_agent.protocol.outbound import OutboundMessage, Text
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

    def start_turn(self, connection_id: str, text: str = "") -> TurnTicket | None:
        self.history_during_start_turn = self.history_started.wait(WAIT_S)
        return self.inner.start_turn(connection_id, text)

    def load_history(self, call_sid: str, max_items: int) -> list[TurnRecord]:
        self.history_started.set()
        return self.inner.load_history(call_sid, max_items)

    def claim_phrase(self, ticket: TurnTicket, spoken: str | None = None, *, final: bool = False) -> bool:
        if self.send_during_first_claim is None:
            self.send_during_first_claim = self.sent.wait(WAIT_S)
        return self.inner.claim_phrase(ticket, spoken, final=final)

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
    engine_for(probe.as_store, sender, model).run_prompt(CONN, "First question", budget())
    without_hint = probe.history_during_start_turn
    probe.history_started.clear()
    requests.reset()
    # Another execution environment (it holds no history for the connection) knows the call.
    outcome = engine_for(probe.as_store, sender, model).run_prompt(CONN, "Second question", budget(), call_sid=CALL)
    assert without_hint is False  # no hint: the generation first, then the history
    assert probe.history_during_start_turn is True
    assert outcome.status == "completed"
    assert [(m.role, m.content) for m in model.requests[1].messages[1:]] == [
        ("user", "First question"),
        ("assistant", "First answer."),
        ("user", "Second question"),
    ]
    assert requests.by_operation() == {"UpdateItem": 1 + outcome.posts, "Query": 1, "PutItem": 2}


def test_the_next_turn_here_makes_one_round_trip_before_the_model(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, requests: RequestCounter
) -> None:
    # Issue 15: the environment keeps the history its last turn on the connection left; the
    # generation update (which it takes anyway) shows nothing changed since, so no query.
    model.say("First answer.", "Second answer.", "Third answer.")
    keeping = dataclasses.replace(AGENT, preemption=Preemption(keep_history=True))
    engine = engine_for(bound, sender, model, keeping)
    engine.run_prompt(CONN, "First question", budget(), call_sid=CALL)
    requests.reset()
    seen: list[dict[str, int]] = []
    model.on_request = lambda _request: seen.append(dict(requests.by_operation()))
    outcome = engine.run_prompt(CONN, "Second question", budget(), call_sid=CALL)
    assert outcome.status == "completed"
    assert seen == [{"UpdateItem": 1}]  # before the model request: the generation, nothing else
    assert requests.by_operation() == {"UpdateItem": 1 + outcome.posts, "PutItem": 2}
    assert [(m.role, m.content) for m in model.requests[1].messages[1:]] == [
        ("user", "First question"),
        ("assistant", "First answer."),
        ("user", "Second question"),
    ]
    # An interrupt after the reply (another environment's) takes a generation: the next turn
    # cannot know what it stored, and reads the history (the marker is in it).
    bound.record_interrupt(CONN, "Second", 300)
    engine.run_prompt(CONN, "Third question", budget(), call_sid=CALL)
    assert ("assistant", "Second") in [(m.role, m.content) for m in model.requests[2].messages]


def test_without_partials_the_model_request_leaves_before_the_generation_is_taken(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, requests: RequestCounter
) -> None:
    model.say("First answer.", "Second answer.", "Unheard.", "Third answer.")
    eager = dataclasses.replace(AGENT, preemption=Preemption(early_request=True, keep_history=True))
    engine = engine_for(bound, sender, model, eager)
    engine.run_prompt(CONN, "First question", budget(), call_sid=CALL, prestart=True)
    requests.reset()
    seen: list[dict[str, int]] = []
    model.on_request = lambda _request: seen.append(dict(requests.by_operation()))
    outcome = engine.run_prompt(CONN, "Second question", budget(), call_sid=CALL, prestart=True)
    assert outcome.status == "completed" and said_of(sender).endswith("Second answer.")
    assert seen == [{}]  # no DynamoDB round trip before the model request
    assert len(model.requests) == 2  # the early request was the turn's: no second one
    # The guess is wrong (an interrupt took a generation meanwhile): the early request is
    # cancelled and the turn asks again with the history as stored, marker included.
    bound.record_interrupt(CONN, "Second", 300)
    outcome = engine.run_prompt(CONN, "Third question", budget(), call_sid=CALL, prestart=True)
    assert outcome.status == "completed" and said_of(sender).endswith("Third answer.")
    assert "Unheard." not in said_of(sender)
    assert model.requests[2].messages != model.requests[3].messages
    assert ("assistant", "Second") in [(m.role, m.content) for m in model.requests[3].messages]


def said_of(sender: RecordingSender) -> str:
    return "".join(m.token for _, m in sender.messages if isinstance(m, Text))


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


def test_every_phrase_waits_for_its_claim(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    model.say(LONG)
    probe = Overlap(bound, sender)
    outcome = engine_for(probe.as_store, sender, model).run_prompt(CONN, "Hours?", budget())
    assert probe.send_during_first_claim is False  # nothing was sent while the first claim ran
    assert outcome.status == "completed"
    assert sender.spoken(CONN) == LONG


class SlowFirstClaim:
    """The first claim takes ``delay_s`` (a DynamoDB attempt that timed out and was retried)."""

    def __init__(self, inner: DynamoSessionStore, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.first = True

    def claim_phrase(self, ticket: TurnTicket, spoken: str | None = None, *, final: bool = False) -> bool:
        if self.first:
            self.first = False
            time.sleep(self.delay_s)
        return self.inner.claim_phrase(ticket, spoken, final=final)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_barge_in_on_a_phrase_whose_claim_was_slow_stops_the_reply(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    model.replies.append(ScriptedReply(tokens=words(LONG * 2), token_delay_s=0.02))

    def barge_in(connection_id: str, message: object) -> None:
        if len(sender.messages) == 1:  # the caller heard the first phrase and talks over the reply
            threading.Timer(0.2, bound.record_interrupt, args=(CONN, "Our", 50)).start()

    sender.on_send = barge_in
    slow = cast(DynamoSessionStore, SlowFirstClaim(bound, 0.5))
    outcome = engine_for(slow, sender, model).run_prompt(CONN, "Tell me everything", budget())
    assert outcome.status == "interrupted"
    assert not any(t.last for t in sender.texts(CONN))
    history = assemble_history(bound.load_history(CALL, 50))
    assert [(m.role, m.content) for m in history][-2:] == [("user", "Tell me everything"), ("assistant", "Our")]


def superseded_while_thinking(
    store: DynamoSessionStore, sender: RecordingSender, reply: ScriptedReply, **changes: Any
) -> TurnOutcome:
    """Run a turn whose generation a newer prompt takes while the model is still thinking."""
    model = ScriptedModel()
    model.replies.append(reply)
    threading.Timer(0.1, store.start_turn, args=(CONN,)).start()
    agent = dataclasses.replace(AGENT, **changes)
    engine = TurnEngine(store=store, sender=sender, model=lambda: model, agent=agent, tools=tool_registry())
    return engine.run_prompt(CONN, "Well", budget())


def test_a_superseded_turn_speaks_no_apology(bound: DynamoSessionStore, sender: RecordingSender) -> None:
    reply = ScriptedReply(tokens=words("Too late."), first_delay_s=1.0)
    superseded_while_thinking(bound, sender, reply, llm_first_token_timeout_s=0.4)
    assert sender.messages == []


def test_a_superseded_turn_neither_says_goodbye_nor_presses_keys(
    store: DynamoSessionStore, sender: RecordingSender
) -> None:
    store.bind_connection(CONN, dataclasses.replace(SETUP, direction="outbound-api"))
    goodbye = ToolCall(id="t1", name="end_call", arguments="{}")
    keys = ToolCall(id="t2", name="send_digits", arguments='{"digits": "1"}')
    for call in (goodbye, keys):
        superseded_while_thinking(store, sender, ScriptedReply(tokens=(), tool_calls=(call,), first_delay_s=0.4))
    assert sender.messages == []


def failing_last(sender: RecordingSender, error: Exception) -> None:
    send = sender.send

    def send_or_fail(connection_id: str, message: OutboundMessage) -> None:
        if isinstance(message, Text) and message.last:
            raise error
        send(connection_id, message)

    sender.send = send_or_fail  # type: ignore[method-assign]


@pytest.mark.parametrize("error", [ConnectionGoneError(CONN), SendError("throttled")], ids=["gone", "send-error"])
def test_a_last_frame_that_was_not_delivered_is_not_in_the_history(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, error: Exception
) -> None:
    model.say("Your order ships on Monday. It should arrive by Thursday, and the tracking number is in your email.")
    failing_last(sender, error)
    engine_for(bound, sender, model).run_prompt(CONN, "Where is my order?", budget())
    heard = sender.spoken(CONN)
    stored = [m.content for m in assemble_history(bound.load_history(CALL, 50)) if m.role == "assistant"]
    assert heard and "tracking" not in heard
    assert stored == [heard]


class InterruptWhileStoring:
    """The caller barges in while the reply is being stored, just before ``last``."""

    def __init__(self, inner: DynamoSessionStore) -> None:
        self.inner = inner
        self.cancelled: list[bool] = []

    def put_turns(self, call_sid: str, records: list[TurnRecord]) -> None:
        if not self.cancelled and any(r.role == "assistant" for r in records):
            outcome = self.inner.record_interrupt(CONN, "Your order ships", 900)
            self.cancelled.append(bool(outcome and outcome.cancelled))
        self.inner.put_turns(call_sid, records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_no_last_after_an_interrupt_recorded_while_the_reply_was_stored(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    model.say("Your order ships on Monday. It should arrive by Thursday.")
    probe = InterruptWhileStoring(bound)
    outcome = engine_for(cast(DynamoSessionStore, probe), sender, model).run_prompt(CONN, "Where is it?", budget())
    assert probe.cancelled == [True]
    assert outcome.status == "interrupted"
    assert not any(t.last for t in sender.texts(CONN))


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
            self,
            connection_id: str,
            text: str,
            budget: Budget,
            *,
            call_sid: str | None = None,
            carried: tuple[str, ...] = (),
            lang: str | None = None,
            shown: str | None = None,
            speculated: bool = False,
            prestart: bool = False,
        ) -> TurnOutcome:
            hints.append(call_sid)
            return TurnOutcome(status=TurnStatus.COMPLETED)

    model = ScriptedModel()
    engine = Spy(store=store, sender=sender, model=lambda: model, agent=AGENT, tools=tool_registry())
    relay = Relay(store=store, engine=engine, sender=sender, agent=AGENT, warm_model=model.warm)
    prompt = '{"type": "prompt", "voicePrompt": "Hi", "last": true}'
    relay.handle("fresh", prompt, budget())
    relay.handle(CONN, json.dumps({"type": "setup", "sessionId": "VX1", "callSid": CALL}), budget())
    relay.handle(CONN, prompt, budget())
    relay.forget_calls()
    relay.handle(CONN, prompt, budget())
    relay.handle(CONN, prompt, budget(), call_sid=CALL)  # the $connect authorizer's context names it
    assert hints == [None, CALL, None, CALL]


def test_an_early_history_read_older_than_the_reply_on_the_air_is_read_again(
    store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The early read (started beside the generation update) can leave before the reply on the air
    stored its caller message and claimed its first phrase, which cleared the unanswered messages:
    that message is then in neither. The turn must read the history again rather than lose it."""
    store.bind_connection(CONN, SETUP)
    model.say("We open at nine.", "We are on Main Street.")
    engine_for(store, sender, model).run_prompt(CONN, "When do you open?", budget())
    real = store.load_history
    reads: list[int] = []

    def early_then_real(call_sid: str, max_items: int) -> list[TurnRecord]:
        reads.append(1)
        history = real(call_sid, max_items)
        if len(reads) == 1:  # as it was before the previous turn stored its caller message
            return [r for r in history if not (r.role == "user" and r.key.generation == 1)]
        return history

    monkeypatch.setattr(store, "load_history", early_then_real)
    another_environment = engine_for(store, sender, model)  # nothing kept: the early read is made
    another_environment.run_prompt(CONN, "Where are you?", budget(), call_sid=SETUP.call_sid)

    assert len(reads) == 2
    users = [m.content for m in model.requests[1].messages if m.role == "user"]
    assert users == ["When do you open?", "Where are you?"]


def test_a_first_turn_whose_early_read_lacks_the_sockets_greeting_reads_again(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    """The read beside the turn start can leave just before the socket's setup stored what it
    hands over and its greeting (a socket taking over opens only after both): without the
    greeting, the first turn's early read is not trusted."""
    greeting = TurnRecord(key=TurnKey(1, GREETING_GENERATION, 1), role="assistant", text=AGENT.lines.welcome_greeting)
    bound.put_turns(CALL, [greeting])
    reads: list[int] = []

    class EarlyRead:
        def __init__(self, inner: DynamoSessionStore) -> None:
            self.inner = inner

        def load_history(self, call_sid: str, max_items: int) -> list[TurnRecord]:
            history = self.inner.load_history(call_sid, max_items)
            reads.append(len(history))
            if len(reads) == 1:  # as read before the setup's writes landed
                return [r for r in history if r.key.generation != GREETING_GENERATION]
            return history

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    model.say("Sure.")
    store = cast(DynamoSessionStore, EarlyRead(bound))
    outcome = engine_for(store, sender, model).run_prompt(CONN, "Hello?", budget(), call_sid=CALL)
    assert outcome.status == "completed"
    assert len(reads) == 2  # the early read, then once more
    assert ("assistant", AGENT.lines.welcome_greeting) in [(m.role, m.content) for m in model.requests[0].messages]
