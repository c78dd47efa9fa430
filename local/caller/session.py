"""ConversationRelay's side of one WebSocket session, as the simulated caller plays it: the signed
upgrade, ``setup``, what the caller says (prompts, partials, keys, barge-ins) and what it hears.

:class:`~local.caller.phone.Call` places the call and follows the TwiML around each session.
Fidelity notes and their sources are in ``phone.py`` and ``docs/protocol.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local.caller import twiml
from local.caller.frames import Frame, ProtocolError, validate
from voice_agent.signatures import sign

if TYPE_CHECKING:
    from local.caller.phone import Call

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


class RelaySession:
    """ConversationRelay's side of one WebSocket session."""

    def __init__(
        self,
        *,
        call: Call,
        relay: twiml.ConversationRelay,
        number: int,
        reconnect: bool,
    ) -> None:
        self.call = call
        self.relay = relay
        self.number = number
        self.reconnect = reconnect
        self.session_id = new_sid("VX")
        self.replies: list[Reply] = []
        self.protocol_errors: list[ProtocolError] = []
        self.end: SessionEnd | None = None
        self.ended = asyncio.Event()
        self.language = relay.attributes.get("transcriptionLanguage") or relay.attributes.get("language") or "en-US"
        self._current: Reply | None = None
        self._interrupted: Reply | None = None  # frames arriving after a barge-in are counted here
        self._unsolicited: Reply | None = None
        self._malformed_in_a_row = 0
        self._opened_at = 0.0
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    # -- opening ---------------------------------------------------------------------------------

    async def open(self) -> None:
        headers: dict[str, str] = {}
        if self.call.auth_token:
            headers["X-Twilio-Signature"] = sign(self.call.auth_token, self.relay.url)
        try:
            self._ws = await connect(
                self.relay.url,
                additional_headers=headers,
                user_agent_header=TWILIO_USER_AGENT,
                open_timeout=35,  # $connect may take up to API Gateway's 29 s
                ping_interval=None,  # ConversationRelay sends nothing during silence
                compression=None,
                max_size=2**20,
            )
        except InvalidStatus as exc:
            raise UpgradeRefusedError(exc.response.status_code) from None
        self._opened_at = time.monotonic()
        kind = "reconnected" if self.reconnect else "connected"
        self.call.transcript.note(f"session {self.number} {kind} ({self.session_id}), setup sent")
        self._reader = asyncio.create_task(self._read(self._ws), name=f"relay-reader-{self.number}")
        custom = dict(self.relay.parameters)
        await self._send(
            {
                "type": "setup",
                "sessionId": self.session_id,
                "accountSid": self.call.identity.account_sid,
                "parentCallSid": "",
                "callSid": self.call.identity.call_sid,
                "from": self.call.identity.from_number,
                "to": self.call.identity.to_number,
                "forwardedFrom": "",
                "callType": "PSTN",
                "callerName": "",
                "direction": self.call.identity.direction,
                "callStatus": "IN_PROGRESS" if self.reconnect else "RINGING",
                "customParameters": custom,
            }
        )
        greeting = self.relay.welcome_greeting
        if greeting:
            reply = Reply(caller="", kind="greeting", sent_at=time.monotonic())
            self.replies.append(reply)
            self.call.transcript.agent_line("Agent (welcome greeting)", greeting)

    # -- what the caller does ----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A reply is being spoken (no ``last`` yet)."""
        return self._current is not None and not self._current.done.is_set()

    async def prompt(self, text: str, *, partial: bool = False, partial_interval_s: float = 0.15) -> Reply:
        """Caller speech; with ``partial``, cumulative ``last: false`` prompts first (only when the
        TwiML sets ``partialPrompts="true"``: Twilio sends none otherwise)."""
        if partial and not self.relay.flag("partialPrompts"):
            self.call.transcript.note('partial prompts not sent: the TwiML does not set partialPrompts="true"')
            partial = False
        if partial:
            words = text.split()
            for n in range(1, len(words)):
                await self._send(
                    {"type": "prompt", "voicePrompt": " ".join(words[:n]), "lang": self.language, "last": False}
                )
                await asyncio.sleep(partial_interval_s)
        reply = self._begin(text, "prompt")
        await self._send({"type": "prompt", "voicePrompt": text, "lang": self.language, "last": True})
        return reply

    async def dtmf(self, digit: str) -> Reply | None:
        """A key press; ``None`` when the TwiML did not enable ``dtmfDetection`` (nothing is sent)."""
        if not self.relay.flag("dtmfDetection"):
            self.call.transcript.note(f'key {digit} not delivered: the TwiML does not set dtmfDetection="true"')
            return None
        if self.busy and self.relay.interruptible in ("any", "dtmf"):
            await self.interrupt()
        reply = self._begin(f"[presses {digit}]", "dtmf")
        await self._send({"type": "dtmf", "digit": digit})
        return reply

    async def interrupt(self) -> Reply | None:
        """Barge in on the reply being spoken: ``interrupt`` with what was heard so far. Twilio
        sends one only while speech is playing: before the first text frame there is nothing to
        interrupt (the caller's next words simply arrive as a newer prompt)."""
        reply = self._current
        if reply is None or reply.done.is_set() or reply.first_text_at is None:
            return None
        if self.relay.interruptible == "none":
            self.call.transcript.note('barge-in ignored: the TwiML sets interruptible="none"')
            return None
        now = time.monotonic()
        heard = reply.text
        started = reply.first_text_at or now
        reply.interrupted = True
        reply.heard = heard
        reply.last_at = now
        self._interrupted = reply
        self._current = None
        reply.done.set()
        await self._send(
            {
                "type": "interrupt",
                "utteranceUntilInterrupt": heard,
                "durationUntilInterruptMs": int((now - started) * 1000),
            }
        )
        self.call.transcript.reply_done(self, reply)
        return reply

    async def send_raw(self, frame: str) -> None:
        """Anything at all (tests: malformed frames, unknown message types)."""
        ws = self._require()
        await ws.send(frame)

    async def drop(self) -> None:
        """The network drops the socket: no close frame (the app sees 1006; the action 64105)."""
        ws = self._require()
        self._finish("failed", "the socket dropped", error=("64105", "Websocket ended"))
        ws.transport.abort()
        await self._join_reader()

    async def hangup(self) -> None:
        """The caller hangs up: Twilio closes with 1000 and the session is ``completed``."""
        ws = self._require()
        self._finish("completed", "the caller hung up", close_code=1000)
        with contextlib.suppress(ConnectionClosed, OSError):
            await ws.close(1000, "Closing websocket session")
        await self._join_reader()

    async def wait(self, reply: Reply, timeout_s: float) -> bool:
        """Until the reply is complete (``last``, ``end``, barge-in) or the session is over."""
        done = asyncio.ensure_future(reply.done.wait())
        over = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({done, over}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            over.cancel()
        return reply.done.is_set()

    async def wait_ended(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), timeout_s)
        return self.ended.is_set()

    # -- internals -------------------------------------------------------------------------------

    def _require(self) -> ClientConnection:
        if self._ws is None:
            raise RuntimeError("the session is not open")
        return self._ws

    def _begin(self, caller: str, kind: ReplyKind) -> Reply:
        previous = self._current
        if previous is not None and not previous.done.is_set():
            # The caller spoke again: before any text (a newer prompt supersedes it), or over
            # speech that was not interruptible.
            previous.superseded = previous.first_text_at is None
            previous.done.set()
        reply = Reply(caller=caller, kind=kind, sent_at=time.monotonic())
        self.replies.append(reply)
        self._current = reply
        self._interrupted = None
        self.call.transcript.caller_input(self, reply)
        return reply

    async def _send(self, message: Mapping[str, Any]) -> None:
        ws = self._require()
        await ws.send(json.dumps(message, separators=(",", ":")))

    async def _read(self, ws: ClientConnection) -> None:
        close_code: int | None = None
        try:
            async for raw in ws:
                await self._on_frame(raw)
        except ConnectionClosed:
            pass
        if ws.close_code is not None:
            close_code = ws.close_code
        if not self.ended.is_set():
            reason = f"the app side closed the socket ({close_code or 1006})"
            self._finish("failed", reason, error=("64105", "Websocket ended"), close_code=close_code)

    async def _on_frame(self, raw: str | bytes) -> None:
        now = time.monotonic()
        try:
            frame = validate(raw)
        except ProtocolError as error:
            self.protocol_errors.append(error)
            self.call.protocol_errors.append(error)
            self.call.transcript.protocol_error(self, error)
            self._malformed_in_a_row += 1
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            with contextlib.suppress(ConnectionClosed):
                await self._send({"type": "error", "description": f"Invalid message received: {text}"})
            if self._malformed_in_a_row >= MALFORMED_LIMIT:
                self._finish("failed", "too many consecutive malformed messages", error=("64105", "Websocket ended"))
                with contextlib.suppress(ConnectionClosed):
                    await self._require().close(1007, "Too many consecutive malformed messages.")
            return
        self._malformed_in_a_row = 0
        if frame.type == "end":
            await self._on_end(frame, now)
            return
        reply = self._target()
        if reply is self._interrupted:
            reply.late_frames += 1
            reply.late_last = reply.late_last or (frame.type == "text" and frame.last)
            return  # Twilio purged this reply's speech on the barge-in
        reply.frames.append(frame)
        reply.arrived.set()
        self.call.transcript.frame(self, reply, frame)
        if frame.type == "text" and reply.first_text_at is None:
            reply.first_text_at = now
        if frame.type == "language":
            self.language = str(frame.data.get("transcriptionLanguage") or self.language)
        if frame.type == "text" and frame.last:
            reply.completed = True
            self._close_reply(reply, now)

    async def _on_end(self, frame: Frame, now: float) -> None:
        """``end`` closes the session; it belongs to the reply that led to it (often after that
        reply's ``last``, once its speech has played)."""
        answered = [r for r in self.replies if r.kind in ("prompt", "dtmf")]
        reply = self._current or (answered[-1] if answered else None)
        if reply is not None and not reply.interrupted:
            reply.frames.append(frame)
            reply.ended = True
            self.call.transcript.frame(self, reply, frame)
            if reply is self._current:
                self._close_reply(reply, now)
            else:
                reply.last_at = now
        handoff = frame.data.get("handoffData")
        self._finish("ended", "the agent ended the session", handoff=handoff, close_code=1000)
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._require().close(1000, "Closing websocket session")

    def _target(self) -> Reply:
        if self._current is not None:
            return self._current
        if self._interrupted is not None:
            return self._interrupted
        if self._unsolicited is None or self._unsolicited.done.is_set():
            self._unsolicited = Reply(caller="", kind="unsolicited", sent_at=time.monotonic())
            self.replies.append(self._unsolicited)
            self._current = self._unsolicited
        return self._unsolicited

    def _close_reply(self, reply: Reply, now: float) -> None:
        reply.last_at = now
        if self._current is reply:
            self._current = None
        reply.done.set()
        self.call.transcript.reply_done(self, reply)

    def _finish(
        self,
        status: SessionStatus,
        reason: str,
        *,
        handoff: Any = None,
        error: tuple[str, str] | None = None,
        close_code: int | None = None,
    ) -> None:
        if self.ended.is_set():
            return
        self.end = SessionEnd(
            status=status,
            reason=reason,
            duration_s=time.monotonic() - self._opened_at,
            handoff_data=handoff if isinstance(handoff, str) else None,
            error_code=error[0] if error else None,
            error_message=error[1] if error else None,
            close_code=close_code,
        )
        if self._current is not None and not self._current.done.is_set():
            self._current.done.set()
        self.ended.set()

    async def _join_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
