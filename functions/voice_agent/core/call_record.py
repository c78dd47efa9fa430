"""The call record: one JSON document per call, made after the call, off every turn's path.

Triggers (``docs/architecture.md``, "The call record"): ``/action`` when it ends the call, ``/voice``
when a machine answered, ``/dial-status`` after a transfer, and the call watch when a call vanished
without any of them. Each puts a ``RecordRequest`` on the records queue; the records function runs
:meth:`RecordProducer.produce`. Requests can arrive twice (a retried callback, two triggers, the
queue's own redelivery), so producing is idempotent by ``callSid``:

1. ``recordedAt`` on the call item: already made, nothing to do;
2. a lease on the call item (``recordClaim``): one builder at a time; another's live lease means
   its request is being handled (this one is dropped; that one is retried if it fails);
3. the document is stored once (S3 ``If-None-Match: *``; an earlier attempt's copy wins);
4. the event is published, then ``recordedAt`` set. A crash between the two publishes the event
   again on the retry: consumers get it at least once, with ``callSid`` to tell repeats apart.

A failure releases the lease and raises: the queue retries the request, and after its last
attempt moves it to the dead-letter queue, where the ``callSid`` waits to be redriven.

The transcript is ``history.heard_lines``: the interpretation the model's history uses, so an
interrupted reply shows what the caller heard, never what was generated.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from voice_agent.agent.config import AgentConfig
from voice_agent.core.call_flow import CallOver, Decision, Goodbye, SessionEnd, Transfer
from voice_agent.core.history import heard_lines
from voice_agent.core.model import CallFacts, RecordRequest, TurnRecord
from voice_agent.core.ports import RecordBus, RecordSink, RecordStore
from voice_agent.core.routing import AGENT_PARAMETER, Agents
from voice_agent.errors import RecordError, StoreUnavailableError
from voice_agent.log import logger
from voice_agent.protocol.text import clean_text

SCHEMA_VERSION: Final = 1
KEY_PREFIX: Final = "calls"  # S3: calls/<YYYY-MM-DD>/<CallSid>.json (the stack grants this prefix only)
EVENT_SOURCE: Final = "voice-agent"
EVENT_DETAIL_TYPE: Final = "Call Record Created"
LEASE_S: Final = 120  # longer than the records function runs (60 s)
# When the trigger asks: the last turn's writes land first (a hang-up races the reply's store).
SETTLE_S: Final = 3
# A transfer's record waits for /dial-status (which asks again at once); this is the backstop.
TRANSFER_BACKSTOP_S: Final = 900
DIAL_SETTLE_S: Final = 1

Outcome = Literal["completed", "transferred", "ended", "no_response", "time_limit", "voicemail", "failed", "cut_off"]
OUTCOMES: Final[Mapping[str, str]] = {
    "completed": "the caller hung up",
    "transferred": "handed to a person (transfer.dialResult says whether one answered)",
    "ended": "the agent said goodbye and ended the call (the caller was done)",
    "no_response": "the caller stayed silent through the reminders; the agent said goodbye",
    "time_limit": "the call reached the agent's maximum call duration",
    "voicemail": "an outbound call answered by a machine: the voicemail line was left",
    "failed": "the call failed: the connection to the agent could not be resumed, or Twilio failed the call",
    "cut_off": "the call ended without Twilio's end callback (seen by the call watch)",
}
_CALL_OVER_FAILED: Final = frozenset({"failed", "busy", "no-answer", "canceled"})


@dataclass(frozen=True, slots=True)
class Asked:
    """A record request and how long to wait before making it."""

    request: RecordRequest
    delay_s: float


def after_action(end: SessionEnd, decision: Decision) -> Asked | None:
    """What ``/action`` asks for: nothing while the call goes on (a reconnect)."""
    failed = end.session_status.lower() == "failed"
    match decision:
        case CallOver():
            outcome = "failed" if failed or end.call_status.lower() in _CALL_OVER_FAILED else "completed"
            return Asked(RecordRequest(end.call_sid, outcome=outcome), SETTLE_S)
        case Transfer():
            reason = decision.handoff.get("reasonCode")
            return Asked(RecordRequest(end.call_sid, outcome="transferred", reason=reason), TRANSFER_BACKSTOP_S)
        case Goodbye():
            return Asked(RecordRequest(end.call_sid, outcome="failed" if failed else "ended"), SETTLE_S)
    return None


def outcome_of(facts: CallFacts, hint: str | None) -> Outcome:
    """How the call ended: the call item's status and reason first (they are the truth the timers
    and ``/action`` wrote), the trigger's view where the item cannot tell (a failed session)."""
    if facts.status == "transferred" or hint == "transferred":
        return "transferred"
    if facts.status in ("voicemail", "cut_off"):
        return "voicemail" if facts.status == "voicemail" else "cut_off"
    if facts.end_reason == "no_response":
        return "no_response"
    if facts.end_reason == "time_limit":
        return "time_limit"
    if hint in ("completed", "ended", "failed", "voicemail", "cut_off"):
        return hint  # type: ignore[return-value]
    if facts.status == "ended":
        return "ended"
    if facts.status == "completed":
        return "completed"
    return "cut_off"


def iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    stamp = datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def build_record(
    facts: CallFacts,
    turns: Sequence[TurnRecord],
    *,
    agent: AgentConfig,
    outcome: Outcome,
    recorded_at: float,
) -> dict[str, Any]:
    """The document. Times are ISO 8601 UTC; ``at`` of a line is when its item was stored."""
    lines = heard_lines(turns)
    transcript = [
        {
            "speaker": "caller" if line.message.role == "user" else "agent",
            "text": clean_text(line.shown or line.message.content).strip(),
            "at": iso(line.at_ms / 1000) if line.at_ms is not None else None,
        }
        for line in lines
        if line.message.role in ("user", "assistant") and line.message.content.strip()
    ]
    times = [t.at_ms for t in turns if t.at_ms is not None]
    started = facts.created_at if facts.created_at is not None else (min(times) / 1000 if times else None)
    ended = facts.ended_at if facts.ended_at is not None else (max(times) / 1000 if times else recorded_at)
    interrupted = {(t.key.conn_seq, t.key.generation) for t in turns if t.role == "interruption"}
    return {
        "version": SCHEMA_VERSION,
        "callSid": facts.call_sid,
        "agent": agent.name,
        "direction": facts.direction or None,
        "from": facts.from_number or None,
        "to": facts.to_number or None,
        "startedAt": iso(started),
        "endedAt": iso(ended),
        "durationS": round(float(ended - started), 1) if started is not None and ended is not None else None,
        "outcome": outcome,
        "language": facts.language or agent.language,
        "transcript": transcript,
        "turns": _turns(lines, interrupted),
        "toolCalls": _tool_calls(turns),
        "reconnects": facts.reconnects,
        "transfer": _transfer(facts, agent) if outcome == "transferred" else None,
        "parameters": dict(facts.parameters),
        "summary": None,
        "fields": None,
        "recordedAt": iso(recorded_at),
    }


def _turns(lines: Sequence[Any], interrupted: set[tuple[int, int]]) -> list[dict[str, Any]]:
    """One entry per turn the caller started (the greeting is not one): when, how long they waited
    for the first phrase, and whether they cut the reply off."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for line in lines:
        if line.turn[1] == 0 or line.turn in seen or line.message.role != "user":
            continue
        seen.add(line.turn)
        waited = next((x.first_phrase_ms for x in lines if x.turn == line.turn and x.first_phrase_ms is not None), None)
        out.append(
            {
                "at": iso(line.at_ms / 1000) if line.at_ms is not None else None,
                "timeToFirstPhraseMs": waited,
                "interrupted": line.turn in interrupted,
            }
        )
    return out


def _tool_calls(turns: Sequence[TurnRecord]) -> list[dict[str, str]]:
    """Every tool the model called, in order, with how it went; never its arguments (they can hold
    anything the caller said)."""
    results = {t.tool_call_id: t.text for t in turns if t.role == "tool" and t.tool_call_id}
    out: list[dict[str, str]] = []
    for record in sorted(turns, key=lambda t: (t.at_ms or 0, t.key)):
        for call in record.tool_calls:
            result = results.get(call.id)
            out.append({"name": call.name, "outcome": "not_run" if result is None else _result_kind(result)})
    return out


def _result_kind(content: str) -> str:
    try:
        data = json.loads(content)
    except ValueError:
        return "ok"
    return "error" if isinstance(data, dict) and "error" in data else "ok"


def _transfer(facts: CallFacts, agent: AgentConfig) -> dict[str, Any]:
    return {
        "target": agent.transfer_target,
        "reasonCode": facts.transfer_reason,
        # Twilio's DialCallStatus from /dial-status; null if none had come when the record was made.
        "dialResult": facts.dial_result,
        "dialDurationS": facts.dial_duration_s,
    }


def event_detail(record: Mapping[str, Any], location: Mapping[str, str]) -> dict[str, Any]:
    """The event: the record without its transcript (a claim check: where to read it), so it stays
    far below EventBridge's 256 KB whatever the call's length."""
    keep = (
        "callSid", "agent", "direction", "from", "to", "startedAt", "endedAt", "durationS", "outcome",
        "language", "reconnects", "transfer", "parameters", "summary", "fields",
    )  # fmt: skip
    detail = {k: record.get(k) for k in keep}
    detail["turns"] = len(record.get("turns") or ())
    detail["record"] = dict(location)
    return detail


Summarize = Callable[[Sequence[Mapping[str, Any]]], tuple[str | None, dict[str, Any] | None]]
Produced = Literal["recorded", "duplicate", "busy", "missing"]


class RecordProducer:
    def __init__(
        self,
        *,
        store: RecordStore,
        sink: RecordSink,
        bus: RecordBus,
        agent: AgentConfig,
        summarize: Summarize | None = None,
        now: Callable[[], float] = time.time,
        owner: str | None = None,
        agents: Agents | None = None,
        summarizer_for: Callable[[AgentConfig], Summarize | None] | None = None,
    ) -> None:
        """``summarize``: the default agent's summary; ``summarizer_for``: each agent's own (its
        ``call_record`` policy and model), which a call another agent answered uses."""
        self._agents = agents  # the call's own agent (its name, transfer target) by its ``agent`` parameter
        self._summarizer_for = summarizer_for
        self._store = store
        self._sink = sink
        self._bus = bus
        self._agent = agent
        self._summarize = summarize
        self._now = now
        self._owner = owner or uuid.uuid4().hex

    def produce(self, request: RecordRequest) -> Produced:
        """Make the call's record once. Raises ``RecordError`` (or ``StoreUnavailableError``) for
        the queue to retry."""
        facts = self._store.call_facts(request.call_sid)
        if facts is None:
            logger.warning("no call item for the record (expired, or never stored)")
            return "missing"
        if facts.recorded_at is not None:
            return "duplicate"
        if not self._store.claim_record(request.call_sid, self._owner, LEASE_S):
            logger.info("another builder holds the record's lease (or it was just made)")
            return "busy"
        try:
            record = self._build(request, facts)
            location, stored = self._sink.put(record)
            self._bus.announce(event_detail(stored, location))
            self._store.mark_recorded(request.call_sid, self._owner, json.dumps(location, sort_keys=True))
        except (RecordError, StoreUnavailableError):
            self._release(request.call_sid)
            raise
        except Exception as exc:
            self._release(request.call_sid)
            raise RecordError(f"record failed: {type(exc).__name__}") from exc
        logger.info(
            "call record made",
            extra={"outcome": stored.get("outcome"), "turns": len(stored.get("turns") or ())},
        )
        return "recorded"

    def _build(self, request: RecordRequest, facts: CallFacts) -> dict[str, Any]:
        if request.reason and facts.transfer_reason is None:
            facts = _with_reason(facts, request.reason)
        turns = self._store.all_turns(request.call_sid)
        outcome = outcome_of(facts, request.outcome)
        agent = self._agent
        named = facts.parameters.get(AGENT_PARAMETER)
        if self._agents is not None and self._agents.name_of(named) != self._agents.default_name:
            agent = self._agents.get(named)
        record = build_record(facts, turns, agent=agent, outcome=outcome, recorded_at=self._now())
        summarize = self._summarize
        if agent is not self._agent and self._summarizer_for is not None:
            summarize = self._summarizer_for(agent)
        if summarize is not None and record["transcript"]:
            summary, fields = summarize(record["transcript"])
            record["summary"], record["fields"] = summary, fields
        return record

    def _release(self, call_sid: str) -> None:
        try:
            self._store.release_record(call_sid, self._owner)
        except StoreUnavailableError:
            logger.warning("record lease not released; it runs out by itself")


def _with_reason(facts: CallFacts, reason: str) -> CallFacts:
    from dataclasses import replace

    return replace(facts, transfer_reason=reason)
