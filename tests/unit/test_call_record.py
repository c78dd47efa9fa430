"""The call record's document, outcome and event, from stored turn items (pure: no store)."""

from __future__ import annotations

import json

import pytest

from voice_agent.adapters.queues import parse_record_request, parse_timer, timer_body
from voice_agent.agent.config import AGENT, CallRecordPolicy
from voice_agent.core.call_flow import CallOver, Goodbye, Reconnect, SessionEnd, Transfer
from voice_agent.core.call_record import (
    OUTCOMES,
    SETTLE_S,
    TRANSFER_BACKSTOP_S,
    after_action,
    build_record,
    event_detail,
    outcome_of,
)
from voice_agent.core.model import (
    INTERRUPTION_PART,
    CallFacts,
    RecordRequest,
    Timer,
    ToolCall,
    TurnKey,
    TurnRecord,
)
from voice_agent.core.summary import checked_fields

CALL = "CA" + "1" * 32
GENERATED = "We are open from nine to six on weekdays, ten to four on Saturdays, and closed on Sundays."
HEARD = "We are open from nine to six"


def rec(gen: int, part: int, role: str, text: str = "", at_ms: int = 0, **kw: object) -> TurnRecord:
    return TurnRecord(key=TurnKey(1, gen, part), role=role, text=text, at_ms=at_ms, **kw)  # type: ignore[arg-type]


def facts(**kw: object) -> CallFacts:
    base: dict[str, object] = {
        "call_sid": CALL,
        "status": "completed",
        "direction": "inbound",
        "from_number": "+15555550123",
        "to_number": "+15555550199",
        "created_at": 1_700_000_000,
        "ended_at": 1_700_000_083,
    }
    return CallFacts(**{**base, **kw})  # type: ignore[arg-type]


BARGE_IN_CALL = [
    rec(0, 1, "assistant", "Hi, this is Ada. How can I help?", at_ms=1_700_000_001_000),
    rec(1, 0, "user", "When are you open?", at_ms=1_700_000_010_000),
    rec(1, 1, "assistant", GENERATED, at_ms=1_700_000_010_400, first_phrase_ms=350),
    rec(1, INTERRUPTION_PART, "interruption", heard=HEARD, at_ms=1_700_000_012_000),
    rec(2, 0, "user", "And on Sunday?", at_ms=1_700_000_013_000),
    rec(2, 1, "assistant", "We're closed on Sundays.", at_ms=1_700_000_013_500, first_phrase_ms=300),
]


def test_a_barge_in_is_recorded_as_what_the_caller_heard_never_as_what_was_generated() -> None:
    record = build_record(facts(), BARGE_IN_CALL, agent=AGENT, outcome="completed", recorded_at=1_700_000_090)
    said = [(line["speaker"], line["text"]) for line in record["transcript"]]
    assert said == [
        ("agent", "Hi, this is Ada. How can I help?"),
        ("caller", "When are you open?"),
        ("agent", HEARD),
        ("caller", "And on Sunday?"),
        ("agent", "We're closed on Sundays."),
    ]
    assert "Saturdays" not in json.dumps(record)  # the unheard part is nowhere in the record
    assert record["turns"] == [
        {"at": "2023-11-14T22:13:30.000Z", "timeToFirstPhraseMs": 350, "interrupted": True},
        {"at": "2023-11-14T22:13:33.000Z", "timeToFirstPhraseMs": 300, "interrupted": False},
    ]


def test_the_document_holds_the_call_and_its_times() -> None:
    record = build_record(
        facts(reconnects=1, parameters={"campaign": "spring"}),
        BARGE_IN_CALL,
        agent=AGENT,
        outcome="completed",
        recorded_at=1_700_000_090,
    )
    assert record["callSid"] == CALL and record["agent"] == "Ada" and record["direction"] == "inbound"
    assert (record["from"], record["to"]) == ("+15555550123", "+15555550199")
    assert (record["startedAt"], record["endedAt"], record["durationS"]) == (
        "2023-11-14T22:13:20.000Z",
        "2023-11-14T22:14:43.000Z",
        83.0,
    )
    assert record["reconnects"] == 1 and record["parameters"] == {"campaign": "spring"}
    assert record["transfer"] is None and record["summary"] is None and record["fields"] is None
    assert all(line["at"].endswith("Z") for line in record["transcript"])


def test_tools_are_listed_by_name_and_outcome_never_with_their_arguments() -> None:
    lookup = ToolCall("t1", "lookup_order", '{"order_id": "1001"}')
    broken = ToolCall("t2", "lookup_order", '{"order_id": "x"}')
    unanswered = ToolCall("t3", "transfer_to_human", "{}")
    records = [
        rec(1, 0, "user", "Order 1001?", at_ms=1),
        rec(1, 1, "assistant", "Let me check.", at_ms=2, tool_calls=(lookup, broken)),
        rec(1, 2, "tool", '{"found": "yes"}', at_ms=3, tool_call_id="t1", tool_name="lookup_order"),
        rec(1, 3, "tool", '{"error": "no such order"}', at_ms=4, tool_call_id="t2", tool_name="lookup_order"),
        rec(2, 0, "user", "A person please", at_ms=5),
        rec(2, 1, "assistant", "", at_ms=6, tool_calls=(unanswered,)),
    ]
    record = build_record(facts(), records, agent=AGENT, outcome="completed", recorded_at=10)
    assert record["toolCalls"] == [
        {"name": "lookup_order", "outcome": "ok"},
        {"name": "lookup_order", "outcome": "error"},
        {"name": "transfer_to_human", "outcome": "not_run"},
    ]
    assert "1001" not in json.dumps(record["toolCalls"])


def test_keys_keyed_in_show_as_their_count() -> None:
    records = [rec(1, 0, "user", "(The caller keyed in: 12345678)", at_ms=1, shown="(keyed in 8 keys)")]
    record = build_record(facts(), records, agent=AGENT, outcome="completed", recorded_at=10)
    assert record["transcript"][0]["text"] == "(keyed in 8 keys)"
    assert "12345678" not in json.dumps(record)


@pytest.mark.parametrize(
    ("status", "reason", "hint", "expected"),
    [
        ("completed", None, "completed", "completed"),  # the caller hung up
        ("transferred", "live-agent-handoff", "transferred", "transferred"),
        ("transferred", None, None, "transferred"),  # /dial-status or the watch asked
        ("ended", None, "ended", "ended"),
        ("ended", "no_response", "ended", "no_response"),
        ("ended", "time_limit", "ended", "time_limit"),
        ("completed", "time_limit", "completed", "time_limit"),  # hung up during the time-limit line
        ("completed", None, "failed", "failed"),  # the session failed and the call was over
        ("ended", None, "failed", "failed"),  # the reconnect cap, then goodbye
        ("voicemail", None, "voicemail", "voicemail"),
        ("cut_off", None, "cut_off", "cut_off"),
        ("active", None, None, "cut_off"),
    ],
)
def test_outcome(status: str, reason: str | None, hint: str | None, expected: str) -> None:
    transfer_reason = reason if status == "transferred" else None
    end_reason = reason if status != "transferred" else None
    assert outcome_of(facts(status=status, end_reason=end_reason, transfer_reason=transfer_reason), hint) == expected
    assert expected in OUTCOMES


def test_a_transfer_is_recorded_with_its_target_reason_and_dial_result() -> None:
    record = build_record(
        facts(status="transferred", transfer_reason="live-agent-handoff", dial_result="completed", dial_duration_s=42),
        BARGE_IN_CALL,
        agent=AGENT,
        outcome="transferred",
        recorded_at=1_700_000_090,
    )
    assert record["transfer"] == {
        "target": AGENT.transfer_target,
        "reasonCode": "live-agent-handoff",
        "dialResult": "completed",
        "dialDurationS": 42,
    }


def end(session_status: str, call_status: str = "in-progress") -> SessionEnd:
    return SessionEnd(call_sid=CALL, call_status=call_status, session_status=session_status)


def test_what_the_end_callback_asks_for() -> None:
    hung_up = after_action(end("completed", "completed"), CallOver())
    assert hung_up is not None and hung_up.request == RecordRequest(CALL, outcome="completed")
    assert hung_up.delay_s == SETTLE_S  # the last turn's writes land first
    dropped = after_action(end("failed", "completed"), CallOver())
    assert dropped is not None and dropped.request.outcome == "failed"
    transfer = after_action(end("ended"), Transfer(handoff={"reasonCode": "live-agent-handoff"}))
    assert transfer is not None and transfer.request.reason == "live-agent-handoff"
    assert transfer.delay_s == TRANSFER_BACKSTOP_S  # /dial-status asks at once; this is the backstop
    goodbye = after_action(end("ended"), Goodbye(say=False))
    assert goodbye is not None and goodbye.request.outcome == "ended"
    assert after_action(end("failed"), Reconnect(attempt=1)) is None  # the call goes on


def test_the_event_is_the_record_without_its_transcript() -> None:
    record = build_record(facts(), BARGE_IN_CALL, agent=AGENT, outcome="completed", recorded_at=1_700_000_090)
    detail = event_detail(record, {"bucket": "b", "key": f"calls/2023-11-14/{CALL}.json"})
    assert "transcript" not in detail and detail["turns"] == 2
    assert detail["record"] == {"bucket": "b", "key": f"calls/2023-11-14/{CALL}.json"}
    assert detail["outcome"] == "completed" and detail["callSid"] == CALL
    assert HEARD not in json.dumps(detail)


def test_fields_the_model_returns_are_checked_against_the_schema() -> None:
    policy = CallRecordPolicy(
        fields_schema={
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "resolved": {"type": "boolean"}, "n": {"type": "integer"}},
        }
    )
    assert policy.fields_schema is not None
    properties = policy.fields_schema["properties"]
    text = 'Sure: {"order_id": "1001", "resolved": "yes", "n": 2, "extra": "dropped"} hope this helps'
    assert checked_fields(text, properties) == {"order_id": "1001", "resolved": None, "n": 2}
    assert checked_fields("no json here", properties) is None


def test_queue_messages_round_trip_and_refuse_anything_else() -> None:
    timer = Timer("keys", CALL, "c1", gen=4, step=1, entry=3, language="es-ES")
    assert parse_timer(json.dumps({"v": 1, **timer_body(timer)})) == timer
    silence = Timer("silence", CALL, "c1", gen=0)
    assert parse_timer(json.dumps(timer_body(silence))) == silence
    assert parse_record_request(json.dumps({"call_sid": CALL, "outcome": "completed"})) == RecordRequest(
        CALL, outcome="completed"
    )
    for bad in ("[]", '{"kind": "nap", "call_sid": "x"}', '{"kind": "silence", "call_sid": "x", "gen": "1"}'):
        with pytest.raises(ValueError, match="not"):
            parse_timer(bad)
    with pytest.raises(ValueError, match="not a record request"):
        parse_record_request('{"outcome": "completed"}')


class _Store:
    """A call in memory, for the record builder."""

    def __init__(self, facts: CallFacts, turns: list[TurnRecord]) -> None:
        self.facts, self.turns = facts, turns

    def call_facts(self, call_sid: str) -> CallFacts | None:
        return self.facts

    def all_turns(self, call_sid: str) -> list[TurnRecord]:
        return list(self.turns)

    def claim_record(self, call_sid: str, owner: str, lease_s: int) -> bool:
        return True

    def release_record(self, call_sid: str, owner: str) -> None: ...

    def mark_recorded(self, call_sid: str, owner: str, location: str) -> None: ...


class _Out:
    def __init__(self) -> None:
        self.records: list[dict[str, object]] = []

    def put(self, record: dict[str, object]) -> tuple[dict[str, str], dict[str, object]]:
        self.records.append(record)
        return {"key": "k"}, record

    def announce(self, detail: object) -> None: ...


def test_a_call_another_agent_answered_is_summarised_by_that_agents_policy() -> None:
    from dataclasses import replace
    from types import MappingProxyType

    from voice_agent.core.call_record import RecordProducer
    from voice_agent.core.routing import Agents

    sales = replace(AGENT, name="Sal", call_record=CallRecordPolicy(summary=True))
    agents = Agents(by_name=MappingProxyType({"front": AGENT, "sales": sales}), default_name="front")
    asked: list[str] = []

    def summarizer_for(agent: object) -> object:
        def summarize(transcript: object) -> tuple[str, None]:
            asked.append(getattr(agent, "name", "?"))
            return "Wanted a quote.", None

        return summarize if getattr(agent, "call_record", None) and agent.call_record.summary else None  # type: ignore[attr-defined]

    def produce(parameters: dict[str, str]) -> dict[str, object]:
        out = _Out()
        producer = RecordProducer(
            store=_Store(facts(parameters=parameters), BARGE_IN_CALL),
            sink=out,  # type: ignore[arg-type]
            bus=out,
            agent=AGENT,
            summarize=None,  # the default agent keeps no summary
            agents=agents,
            summarizer_for=summarizer_for,  # type: ignore[arg-type]
        )
        assert producer.produce(RecordRequest(CALL)) == "recorded"
        return out.records[-1]

    assert produce({"agent": "sales"})["summary"] == "Wanted a quote."
    assert produce({})["summary"] is None  # the default agent's call: its policy, no summary
    assert asked == ["Sal"]
