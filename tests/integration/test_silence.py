"""Silence, the call's length and calls that vanish: timers set by the real turn engine and relay,
fired by the real timer handler, against the real store (moto). A test plays the queue: it fires
the timers the code set, in the order and at the time a queue would."""

from __future__ import annotations

import dataclasses

import pytest

from tests.integration.conftest import RequestCounter
from tests.integration.test_turn_engine import CONN, SETUP, budget
from tests.support.fakes import RecordingRecordQueue, RecordingSender, RecordingTimers, ScriptedModel
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT, AgentConfig, TimingPolicy
from voice_agent.core.budget import SystemClock
from voice_agent.core.history import assemble_history
from voice_agent.core.key_entry import KeyEntry
from voice_agent.core.relay import Relay
from voice_agent.core.silence import CUT_OFF_GRACE_S, TimerHandler, TimerScheduler
from voice_agent.core.turn_engine import TurnEngine
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.outbound import End, OutboundMessage, Text
from voice_agent.wiring import tool_registry

CALL = SETUP.call_sid
LINES = AGENT.timing.lines_for("en-US", "en-US")


class Rig:
    """The engine, the relay and the timer handler of one connection, sharing one timer queue."""

    def __init__(self, store: DynamoSessionStore, agent: AgentConfig = AGENT, now: float = 1_000_000.0) -> None:
        self.store, self.agent, self.now = store, agent, now
        self.sender = RecordingSender()
        self.model = ScriptedModel()
        self.timers = RecordingTimers(sender=self.sender)
        self.records = RecordingRecordQueue()
        schedule = TimerScheduler(timers=self.timers, agent=agent, now=self.clock)
        self.engine = TurnEngine(
            store=store, sender=self.sender, model=lambda: self.model, agent=agent, tools=tool_registry(),
            timers=schedule, clock=SystemClock(),
        )  # fmt: skip
        keys = KeyEntry(store=store, agent=agent, run_turn=self._keys_turn, schedule=schedule)
        self.relay = Relay(
            store=store, engine=self.engine, sender=self.sender, agent=agent, warm_model=self.model.warm,
            keys=keys, timers=schedule,
        )  # fmt: skip
        self.handler = TimerHandler(
            store=store, sender=self.sender, timers=self.timers, agent=agent, records=self.records,
            run_turn=lambda c, note, shown, b: self.engine.run_prompt(c, note, b, shown=shown), now=self.clock,
        )  # fmt: skip

    def clock(self) -> float:
        return self.now

    def _keys_turn(self, connection_id: str, note: str, shown: str, b: object, call_sid: str) -> object:
        return self.engine.run_prompt(connection_id, note, budget(), call_sid=call_sid, shown=shown)

    def frame(self, raw: str) -> None:
        self.relay.handle(CONN, raw, budget())

    def say(self, text: str) -> None:
        self.frame(f'{{"type": "prompt", "voicePrompt": "{text}", "last": true}}')

    def fire(self, kind: str) -> str:
        timer, _ = self.timers.pop(kind)
        return self.handler.fire(timer, budget())

    def last(self) -> OutboundMessage:
        return self.sender.messages[-1][1]

    def spoken_since(self, before: int) -> list[object]:
        return [m for _, m in self.sender.messages[before:]]


@pytest.fixture
def rig(store: DynamoSessionStore) -> Rig:
    rig = Rig(store)
    rig.frame(f'{{"type": "setup", "sessionId": "VX1", "callSid": "{CALL}", "direction": "inbound"}}')
    return rig


def test_silence_is_counted_from_the_end_of_what_was_said(rig: Rig) -> None:
    greeting_timer, greeting_delay = rig.timers.timers[0]
    assert greeting_timer.kind == "silence" and greeting_timer.gen == 0
    words = len(AGENT.lines.welcome_greeting.split())
    assert greeting_delay == pytest.approx(words / 2.5 + 0.5 + AGENT.timing.silence_after_s)
    rig.model.say("We open at nine in the morning, every day of the week except Sunday.")
    rig.say("When do you open?")
    timer, delay = rig.timers.timers[-1]
    assert (timer.kind, timer.gen, timer.step) == ("silence", 1, 0)
    assert delay > AGENT.timing.silence_after_s + 4  # 14 words still playing after `last`
    assert rig.timers.frames_before[-1] == len(rig.sender.messages)  # set after the last frame, not before
    closing = rig.last()
    assert isinstance(closing, Text) and closing.last


def test_reminders_after_real_silence_then_goodbye_and_the_end(rig: Rig) -> None:
    before = len(rig.sender.messages)
    assert rig.fire("silence") == "reminded"  # the greeting's timer: nobody said anything
    assert rig.spoken_since(before) == [Text(LINES.reminders[0], last=True)]
    assert rig.timers.last("silence").step == 1
    assert rig.fire("silence") == "reminded"
    assert rig.fire("silence") == "silence_goodbye"
    assert rig.last() == Text(LINES.silence_goodbye, last=True)
    rig.say("Hello?")  # too late: the agent is ending the call, no turn starts
    assert rig.model.requests == []
    hangup, _ = rig.timers.pop("hangup")
    assert rig.handler.fire(hangup, budget()) == "ended"
    assert isinstance(rig.last(), End)
    assert rig.handler.fire(hangup, budget()) == "stale"  # delivered twice: one end
    history = [(m.role, m.content) for m in assemble_history(rig.store.load_history(CALL, 40))]
    assert history[-3:] == [
        ("assistant", LINES.reminders[0]),
        ("assistant", LINES.reminders[1]),
        ("assistant", LINES.silence_goodbye),
    ]
    call = rig.store.call_facts(CALL)
    assert call is not None and call.end_reason == "no_response"
    stored = rig.store.get_call(CALL)
    assert stored is not None and stored.farewell_spoken  # /action will not say goodbye twice


def test_a_reminder_never_fires_while_the_agent_speaks_or_after_the_caller_spoke(rig: Rig) -> None:
    greeting = rig.timers.pop("silence")[0]
    rig.model.say("We open at nine.")
    rig.say("When do you open?")  # the caller spoke: the greeting's timer is stale
    before = len(rig.sender.messages)
    assert rig.handler.fire(greeting, budget()) == "stale"
    # A reply still being spoken holds a newer generation than any timer set before it.
    reply = rig.timers.pop("silence")[0]
    rig.model.say("Let me see.")
    rig.say("And on Sunday?")
    assert rig.handler.fire(reply, budget()) == "stale"
    assert all(not isinstance(m, Text) or m.token not in LINES.reminders for m in rig.spoken_since(before))


def test_reminders_stop_when_the_caller_speaks_and_start_over_after_the_next_reply(rig: Rig) -> None:
    assert rig.fire("silence") == "reminded"
    pending = rig.timers.pop("silence")[0]  # reminder 2 would follow
    rig.model.say("Sure, what else can I do for you?")
    rig.say("Yes, I'm here.")
    assert rig.handler.fire(pending, budget()) == "stale"  # no second reminder, no goodbye
    fresh = rig.timers.last("silence")
    assert fresh.step == 0  # the next silence starts from the first reminder
    assert rig.handler.fire(fresh, budget()) == "reminded"
    assert rig.last() == Text(LINES.reminders[0], last=True)


def test_a_timer_delivered_twice_speaks_once(rig: Rig) -> None:
    timer = rig.timers.pop("silence")[0]
    assert rig.handler.fire(timer, budget()) == "reminded"
    assert rig.handler.fire(timer, budget()) == "stale"


def test_no_reminder_while_the_caller_keys_in(rig: Rig) -> None:
    from tests.support.fakes import ScriptedReply
    from voice_agent.core.model import ToolCall

    rig.model.replies.append(
        ScriptedReply(tool_calls=[ToolCall("k1", "collect_keys", '{"prompt": "Please key in your PIN.", "count": 4}')])
    )
    rig.say("I want to check my account.")
    assert rig.timers.of("silence")[-1].gen == 0  # the greeting's; this turn set a key timer instead
    key_timer = rig.timers.last("keys")
    greeting = rig.timers.pop("silence")[0]
    rig.frame('{"type": "dtmf", "digit": "4"}')
    assert rig.handler.fire(greeting, budget()) == "stale"
    assert rig.handler.fire(key_timer, budget()) == "stale"  # a key came since: no re-prompt either


def test_the_maximum_call_duration_ends_the_call_with_a_line(store: DynamoSessionStore) -> None:
    agent = dataclasses.replace(AGENT, timing=TimingPolicy(max_call_s=600))
    rig = Rig(store, agent=agent, now=1_000_000.0)
    rig.frame(f'{{"type": "setup", "sessionId": "VX1", "callSid": "{CALL}", "direction": "inbound"}}')
    watch, delay = rig.timers.timers[-1]
    assert watch.kind == "watch" and delay == 600 and watch.deadline >= 1_000_000 + 600
    rig.now = watch.deadline - 300  # early (a queue can be): it looks again at the deadline
    assert rig.handler.fire(watch, budget()) == "watching"
    assert rig.timers.timers[-1][1] == pytest.approx(300)
    rig.now = watch.deadline + 1
    assert rig.fire("watch") == "time_limit"
    assert rig.last() == Text(LINES.time_limit, last=True)
    assert rig.fire("hangup") == "ended"
    facts = store.call_facts(CALL)
    assert facts is not None and facts.end_reason == "time_limit"


def test_a_call_that_vanished_without_its_end_callback_is_recorded_as_cut_off(rig: Rig) -> None:
    watch = rig.timers.last("watch")
    rig.store.close_connection(CONN, gone=False)  # the socket closed; no /action ever came
    closed = rig.store.watch_call(CALL)
    assert closed is not None and closed.closed_at is not None
    rig.now = closed.closed_at + 5  # closed just now: perhaps reconnecting
    assert rig.handler.fire(watch, budget()) == "watching"
    rig.now = closed.closed_at + CUT_OFF_GRACE_S + 1
    assert rig.fire("watch") == "cut_off"
    assert [r.outcome for r, _ in rig.records.asked] == ["cut_off"]
    facts = rig.store.call_facts(CALL)
    assert facts is not None and facts.status == "cut_off"


def test_a_finished_call_without_its_record_is_asked_for_again_when_overdue(rig: Rig) -> None:
    watch = rig.timers.last("watch")
    rig.store.end_call(CALL, "completed")  # ended, but the record request was lost
    ended = rig.store.watch_call(CALL)
    assert ended is not None and ended.ended_at is not None
    rig.now = ended.ended_at + 60
    assert rig.handler.fire(watch, budget()) == "watching"
    assert rig.records.asked == []
    rig.now = ended.ended_at + 3600
    assert rig.fire("watch") == "over"
    assert [r.call_sid for r, _ in rig.records.asked] == [CALL]


def test_a_queue_that_refuses_a_timer_costs_the_caller_nothing(store: DynamoSessionStore) -> None:
    rig = Rig(store)
    rig.timers.fail = True
    rig.frame(f'{{"type": "setup", "sessionId": "VX1", "callSid": "{CALL}", "direction": "inbound"}}')
    rig.model.say("We open at nine.")
    rig.say("When do you open?")
    assert rig.sender.spoken(CONN) == "We open at nine."


def test_a_turn_with_timers_makes_the_same_dynamodb_requests(rig: Rig, requests: RequestCounter) -> None:
    """The silence timer is one SQS message after `last`: no DynamoDB round trip is added, before
    the model request or after it."""
    rig.model.say("We open at nine in the morning, every day of the week except Sunday.")
    requests.reset()
    rig.say("When do you open?")
    posts = len([m for _, m in rig.sender.messages if isinstance(m, Text)])
    assert requests.by_operation() == {"UpdateItem": 1 + posts, "Query": 1, "PutItem": 2}
    assert [t.kind for t, _ in rig.timers.timers[-1:]] == ["silence"]


def test_each_call_gets_the_timings_and_lines_of_the_agent_that_answers_it(store: DynamoSessionStore) -> None:
    """Two agents in one stack: a call the second one answers is reminded in its words, on its
    timing, by every timer of the call (the greeting's, a reply's, the next reminder, the watch)."""
    import json
    from types import MappingProxyType

    from voice_agent.adapters.queues import parse_timer, timer_body
    from voice_agent.agent.config import TimedLines
    from voice_agent.core.routing import Agents

    sales_lines = TimedLines(reminders=("Sales here: still with me?",), silence_goodbye="Sales signing off. Bye!")
    sales = dataclasses.replace(
        AGENT,
        name="Sal",
        timing=dataclasses.replace(
            AGENT.timing, silence_after_s=3, max_call_s=600, lines=MappingProxyType({"en-US": sales_lines})
        ),
    )
    agents = Agents(by_name=MappingProxyType({"front": AGENT, "sales": sales}), default_name="front")
    sender, model = RecordingSender(), ScriptedModel()
    timers = RecordingTimers(sender=sender)
    schedule = TimerScheduler(timers=timers, agent=AGENT, agents=agents, now=lambda: 1_000_000.0)
    engine = TurnEngine(
        store=store, sender=sender, model=lambda: model, agent=AGENT, tools=tool_registry(), timers=schedule
    )
    relay = Relay(
        store=store, engine=engine, sender=sender, agent=AGENT, warm_model=model.warm, timers=schedule, agents=agents
    )
    setup = {"type": "setup", "sessionId": "VX1", "callSid": CALL, "customParameters": {"agent": "sales"}}
    relay.handle(CONN, json.dumps(setup), budget())

    greeting, delay = timers.timers[0]
    assert (greeting.kind, greeting.agent) == ("silence", "sales")
    assert delay == pytest.approx(len(sales.lines.welcome_greeting.split()) / 2.5 + 0.5 + 3)
    watch = timers.last("watch")
    assert watch.agent == "sales" and watch.deadline == 1_000_000 + 600
    assert parse_timer(json.dumps(timer_body(greeting))) == greeting  # the agent survives the queue

    handler = TimerHandler(store=store, sender=sender, timers=timers, agent=AGENT, agents=agents)
    assert handler.fire(greeting, budget()) == "reminded"
    assert sender.messages[-1][1] == Text("Sales here: still with me?", last=True)
    assert timers.last("silence").agent == "sales"  # the next one is the same agent's
    assert handler.fire(timers.pop("silence")[0], budget()) == "silence_goodbye"
    assert sender.messages[-1][1] == Text("Sales signing off. Bye!", last=True)

    # A reply's timer names the agent too (the turn reads it from the call context).
    store.bind_connection("c2", Setup(session_id="VX2", call_sid="CA" + "7" * 32, custom_parameters={"agent": "sales"}))
    model.say("We open at nine.")
    engine.run_prompt("c2", "When do you open?", budget())
    assert timers.last("silence").agent == "sales"
