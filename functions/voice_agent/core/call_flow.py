"""What happens when a ConversationRelay session ends: the ``<Connect action>`` callback.

| SessionStatus | CallStatus  | decision                                                               |
|---------------|-------------|------------------------------------------------------------------------|
| ``completed`` | (any)       | the caller hung up: mark the call ended, nothing to say                |
| ``ended``     | in-progress | with HandoffData: transfer to a person; without: goodbye and hang up   |
| ``failed``    | in-progress | the socket dropped (64105 ...): resume the same conversation with a new |
|               |             | session, counted; past ``max_reconnect_attempts``: transfer or goodbye  |
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
from voice_agent.core.ports import CallStore
from voice_agent.errors import StoreUnavailableError
from voice_agent.log import logger

T = TypeVar("T")

RECONNECT_LIMIT_REASON = "reconnect-limit"
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


@dataclass(frozen=True, slots=True)
class Transfer:
    handoff: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Reconnect:
    attempt: int
    parameters: Mapping[str, str] = field(default_factory=dict)
    call_token: str | None = None  # the call's token, repeated so the new socket's setup is accepted


@dataclass(frozen=True, slots=True)
class Goodbye:
    say: bool  # False when the agent already said goodbye on the socket


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
        if handoff is not None:
            _quietly(lambda: store.end_call(end.call_sid, "transferred"))
            return Transfer(handoff=handoff)
        call = _quietly(lambda: store.get_call(end.call_sid))
        _quietly(lambda: store.end_call(end.call_sid, "ended"))
        return Goodbye(say=not (call is not None and call.farewell_spoken))
    # "failed", a restart the agent asked for, or a status this version does not know while the
    # call goes on: try to resume.
    try:
        attempt = store.count_reconnect(end.call_sid, end.session_id)
        call = store.get_call(end.call_sid)
    except StoreUnavailableError:
        logger.error("cannot count reconnects; transferring instead")
        return Transfer(handoff={"reasonCode": STORE_DOWN_REASON, "reason": "The session store is unavailable"})
    if attempt <= agent.max_reconnect_attempts:
        params = dict(call.custom_parameters) if call is not None else {}
        return Reconnect(attempt=attempt, parameters=params, call_token=call.call_token if call is not None else None)
    logger.warning("reconnect limit reached", extra={"attempts": attempt - 1})
    if agent.after_reconnect_limit == "transfer":
        _quietly(lambda: store.end_call(end.call_sid, "transferred"))
        return Transfer(
            handoff={"reasonCode": RECONNECT_LIMIT_REASON, "reason": f"The connection failed {attempt - 1} times"}
        )
    _quietly(lambda: store.end_call(end.call_sid, "ended"))
    return Goodbye(say=True)


def _quietly(action: Callable[[], T]) -> T | None:
    try:
        return action()
    except StoreUnavailableError:
        logger.error("session store write lost")
        return None
