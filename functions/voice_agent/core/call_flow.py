"""What happens when a ConversationRelay session ends: the ``<Connect action>`` callback.

| SessionStatus | CallStatus  | decision                                                               |
|---------------|-------------|------------------------------------------------------------------------|
| ``completed`` | (any)       | the caller hung up: mark the call ended, nothing to say                |
| ``ended``     | in-progress | with HandoffData: transfer to a person; without: goodbye and hang up   |
| ``failed``    | in-progress | resume the same conversation with a new session, as ``ErrorCode``       |
|               |             | says (``core/recovery.py``: same configuration, backup providers, or a  |
|               |             | known-good one once), counted; past ``max_reconnect_attempts``, or a    |
|               |             | known-good configuration refused too: transfer or goodbye               |
| ``ended``     | in-progress | with the agent's own restart request (``SESSION_RESTART_REASON``: the    |
|               |             | socket could not be bound at setup): as ``failed``                      |
| any           | completed   | the call is over: mark it ended                                        |

If the session store is unreachable, a failed session is transferred to a person rather than
reconnected blindly (a reconnect loop with no count would never end). A reconnect is counted once
per relay session (``SessionId``): Twilio's signatures carry no timestamp, so a replayed or retried
callback must get the same answer without spending the call's reconnect budget again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from voice_agent.agent.config import AgentConfig
from voice_agent.core.model import CallRecord
from voice_agent.core.ports import CallStore
from voice_agent.core.recovery import Recovery, Rule, classify
from voice_agent.core.speech_plan import SpeechPlan
from voice_agent.errors import StoreUnavailableError
from voice_agent.log import logger

T = TypeVar("T")

RECONNECT_LIMIT_REASON = "reconnect-limit"
# Twilio refused the known-good configuration after refusing the configured one: a person, logged
# as a configuration error (a voice, provider or attribute the account cannot use).
CONFIG_ERROR_REASON = "configuration-error"
STORE_DOWN_REASON = "session-store-unavailable"
# The agent ends a session with this reasonCode when it cannot serve it (DynamoDB was down at setup):
# resume the call on a new socket rather than transfer it.
SESSION_RESTART_REASON = "session-restart"


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """The action callback's fields (a typed view of Twilio's form)."""

    call_sid: str
    call_status: str
    session_status: str
    handoff_data: str | None = None
    error_code: str | None = None
    session_id: str | None = None  # the relay session that ended (VX...)
    error_message: str | None = None  # read only to tell a provider failure whose code is unknown


@dataclass(frozen=True, slots=True)
class Transfer:
    handoff: Mapping[str, str]
    language: str | None = None  # the call's language: the line before <Dial> is said in it


@dataclass(frozen=True, slots=True)
class Reconnect:
    attempt: int
    parameters: Mapping[str, str] = field(default_factory=dict)
    call_token: str | None = None  # the call's token, repeated so the new socket's setup is accepted
    plan: SpeechPlan = field(default_factory=SpeechPlan)  # how the resumed session speaks


@dataclass(frozen=True, slots=True)
class Goodbye:
    say: bool  # False when the agent already said goodbye on the socket
    language: str | None = None
    reason_code: str | None = None  # why the call ends here, when it is not the agent's goodbye


@dataclass(frozen=True, slots=True)
class CallOver:
    pass


Decision = Transfer | Reconnect | Goodbye | CallOver


def parse_handoff(raw: str | None) -> dict[str, str] | None:
    """``handoffData`` is a string; this project sends JSON, but accept anything."""
    if raw is None or not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return {"reasonCode": "unspecified", "reason": raw[:300]}
    if not isinstance(data, dict):
        return {"reasonCode": "unspecified", "reason": str(data)[:300]}
    return {str(k): str(v) for k, v in data.items()}


def decide(end: SessionEnd, *, store: CallStore, agent: AgentConfig) -> Decision:
    status = end.session_status.lower()
    call_over = end.call_status.lower() in ("completed", "busy", "failed", "no-answer", "canceled")
    if status == "completed" or call_over:
        _quietly(lambda: store.end_call(end.call_sid, "completed"))
        return CallOver()
    handoff = parse_handoff(end.handoff_data)
    restart = handoff is not None and handoff.get("reasonCode") == SESSION_RESTART_REASON
    if status == "ended" and not restart:
        return _ended(end, handoff, store)
    # "failed", a restart the agent asked for, or a status this version does not know while the
    # call goes on: resume, as the error code says (core/recovery.py).
    rule = Rule(Recovery.SAME, "session restart") if restart else classify(end.error_code, end.error_message)
    return _resume(end, rule, store=store, agent=agent)


def _ended(end: SessionEnd, handoff: dict[str, str] | None, store: CallStore) -> Decision:
    """The agent ended the session: a transfer (with ``handoffData``) or goodbye."""
    call = _quietly(lambda: store.get_call(end.call_sid))
    language = call.language if call is not None else None
    if handoff is not None:
        _quietly(lambda: store.end_call(end.call_sid, "transferred"))
        return Transfer(handoff=handoff, language=language)
    _quietly(lambda: store.end_call(end.call_sid, "ended"))
    return Goodbye(say=not (call is not None and call.farewell_spoken), language=language)


def _resume(end: SessionEnd, rule: Rule, *, store: CallStore, agent: AgentConfig) -> Decision:
    """A new ``<Connect>`` that resumes the conversation, counted once per session; past the cap, or
    after a known-good configuration was refused too, a person or goodbye."""
    try:
        call = store.record_failure(end.call_sid, end.session_id, rule.recovery.fallback)
    except StoreUnavailableError:
        logger.error("cannot count reconnects; transferring instead")
        return Transfer(handoff={"reasonCode": STORE_DOWN_REASON, "reason": "The session store is unavailable"})
    logger.info(
        "resuming a failed session",
        extra={"error_code": end.error_code, "recovery": rule.recovery.value, "failed": rule.what},
    )
    if rule.recovery is Recovery.KNOWN_GOOD and call.config_errors > 1:
        logger.error(
            "configuration error: Twilio refused the known-good configuration too",
            extra={"error_code": end.error_code, "config_errors": call.config_errors},
        )
        return _give_up(store, call, agent, CONFIG_ERROR_REASON, "Twilio refused the call's configuration")
    if call.reconnects > agent.max_reconnect_attempts:
        logger.warning("reconnect limit reached", extra={"attempts": call.reconnects - 1})
        return _give_up(
            store, call, agent, RECONNECT_LIMIT_REASON, f"The connection failed {call.reconnects - 1} times"
        )
    return Reconnect(
        attempt=call.reconnects,
        parameters=dict(call.custom_parameters),
        call_token=call.call_token,
        plan=_plan(call, agent),
    )


def _plan(call: CallRecord, agent: AgentConfig) -> SpeechPlan:
    """How the resumed session speaks: in the call's language, on the backups of every provider
    that failed on this call, and known-good after Twilio refused a configuration."""
    option = agent.speech_for(call.language)
    fallbacks = call.speech_fallbacks
    for kind, backup in (("stt", option.backups.stt), ("tts", option.backups.tts)):
        if kind in fallbacks and backup is None:
            logger.warning("no backup provider configured; resuming on the same one", extra={"kind": kind})
    return SpeechPlan(
        language=call.language,
        backup_tts="tts" in fallbacks,
        backup_stt="stt" in fallbacks,
        known_good="config" in fallbacks,
    )


def _give_up(store: CallStore, call: CallRecord, agent: AgentConfig, reason_code: str, reason: str) -> Decision:
    """No more reconnects for this call: a person (``after_reconnect_limit``), or goodbye."""
    if agent.after_reconnect_limit == "transfer":
        _quietly(lambda: store.end_call(call.call_sid, "transferred"))
        return Transfer(handoff={"reasonCode": reason_code, "reason": reason}, language=call.language)
    _quietly(lambda: store.end_call(call.call_sid, "ended"))
    return Goodbye(say=True, language=call.language, reason_code=reason_code)


def _quietly(action: Callable[[], T]) -> T | None:
    try:
        return action()
    except StoreUnavailableError:
        logger.error("session store write lost")
        return None
