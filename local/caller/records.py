"""What the simulated caller records about a call: its identity, each reply it heard (with timing),
how each session ended, and where the call is narrated. Shared by ``session.py`` and ``phone.py``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from local.caller.frames import Frame, ProtocolError

if TYPE_CHECKING:
    from local.caller.session import RelaySession

TWILIO_USER_AGENT = "Jetty/11.0.24"  # what ConversationRelay's client sends on the upgrade
MALFORMED_LIMIT = 10  # consecutive invalid frames after which Twilio closes the session (1007)

SessionStatus = Literal["completed", "ended", "failed"]
ReplyKind = Literal["greeting", "prompt", "dtmf", "unsolicited"]


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    from_number: str = "+15555550123"
    to_number: str = "+15555550199"
    account_sid: str = "AC" + "0" * 32
    direction: str = "inbound"
    call_sid: str = field(default_factory=lambda: new_sid("CA"))


@dataclass(eq=False)
class Reply:
    """What the agent sent in answer to one caller input, with its timing."""

    caller: str
    kind: ReplyKind
    sent_at: float
    frames: list[Frame] = field(default_factory=list)
    first_text_at: float | None = None
    last_at: float | None = None
    completed: bool = False  # ``last: true`` arrived
    ended: bool = False  # ``end`` arrived
    interrupted: bool = False  # the caller barged in
    superseded: bool = False  # the caller spoke again before any of it was heard
    heard: str | None = None  # utteranceUntilInterrupt sent on barge-in
    late_frames: int = 0  # frames of this reply that arrived after the barge-in
    # One of them closed the reply (``last``): it had finished before the app saw the interrupt.
    late_last: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set on every frame of it

    @property
    def text(self) -> str:
        return "".join(f.token for f in self.frames if f.type == "text")

    @property
    def first_text_ms(self) -> float | None:
        return None if self.first_text_at is None else (self.first_text_at - self.sent_at) * 1000

    @property
    def last_ms(self) -> float | None:
        return None if self.last_at is None else (self.last_at - self.sent_at) * 1000

    def other_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.type != "text"]

    async def until_heard(self, chars: int, timeout_s: float) -> bool:
        """Wait (without polling: a load test runs a hundred callers) until ``chars`` characters of
        text arrived or the reply is over; True if they arrived."""
        deadline = time.monotonic() + timeout_s
        while len(self.text) < chars and not self.done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.arrived.clear()
            waiters = {asyncio.ensure_future(self.arrived.wait()), asyncio.ensure_future(self.done.wait())}
            try:
                await asyncio.wait(waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        return len(self.text) >= chars


@dataclass(frozen=True, slots=True)
class SessionEnd:
    status: SessionStatus
    reason: str
    duration_s: float
    handoff_data: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    close_code: int | None = None


class UpgradeRefusedError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"WebSocket upgrade refused with HTTP {status}")
        self.status = status


class Transcript(Protocol):
    """Where the call is narrated (scripted: whole lines; interactive: streamed tokens)."""

    def note(self, text: str) -> None: ...

    def agent_line(self, label: str, text: str) -> None: ...

    def caller_input(self, session: RelaySession, reply: Reply) -> None: ...

    def frame(self, session: RelaySession, reply: Reply, frame: Frame) -> None: ...

    def reply_done(self, session: RelaySession, reply: Reply) -> None: ...

    def protocol_error(self, session: RelaySession, error: ProtocolError) -> None: ...


class Replies:
    """One session's replies, and which one the agent's next frame belongs to: the reply to the
    caller's latest input, the one a barge-in cut (its late frames are counted, not heard), or an
    unsolicited one (frames no input asked for)."""

    def __init__(self) -> None:
        self.all: list[Reply] = []
        self.current: Reply | None = None
        self.interrupted: Reply | None = None
        self._unsolicited: Reply | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None and not self.current.done.is_set()

    def begin(self, caller: str, kind: ReplyKind) -> Reply:
        previous = self.current
        if previous is not None and not previous.done.is_set():
            # The caller spoke again: before any text (a newer prompt supersedes it), or over
            # speech that was not interruptible.
            previous.superseded = previous.first_text_at is None
            previous.done.set()
        reply = Reply(caller=caller, kind=kind, sent_at=time.monotonic())
        self.all.append(reply)
        self.current = reply
        self.interrupted = None
        return reply

    def target(self) -> Reply:
        if self.current is not None:
            return self.current
        if self.interrupted is not None:
            return self.interrupted
        if self._unsolicited is None or self._unsolicited.done.is_set():
            self._unsolicited = Reply(caller="", kind="unsolicited", sent_at=time.monotonic())
            self.all.append(self._unsolicited)
            self.current = self._unsolicited
        return self._unsolicited

    def close(self, reply: Reply, now: float) -> None:
        reply.last_at = now
        if self.current is reply:
            self.current = None
        reply.done.set()


def setup_frame(identity: CallerIdentity, session_id: str, call_status: str, parameters: Mapping[str, str]) -> str:
    """The ``setup`` Twilio sends first on a socket (``callStatus`` RINGING on the call's first
    session, IN_PROGRESS after)."""
    return json.dumps(
        {
            "type": "setup",
            "sessionId": session_id,
            "accountSid": identity.account_sid,
            "parentCallSid": "",
            "callSid": identity.call_sid,
            "from": identity.from_number,
            "to": identity.to_number,
            "forwardedFrom": "",
            "callType": "PSTN",
            "callerName": "",
            "direction": identity.direction,
            "callStatus": call_status,
            "customParameters": dict(parameters),
        },
        separators=(",", ":"),
    )
