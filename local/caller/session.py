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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local.caller import twiml
from local.caller.frames import Frame, ProtocolError, validate
from local.caller.records import (
    MALFORMED_LIMIT,
    TWILIO_USER_AGENT,
    CallerIdentity,
    Replies,
    Reply,
    ReplyKind,
    SessionEnd,
    SessionStatus,
    Transcript,
    UpgradeRefusedError,
    new_sid,
    setup_frame,
)
from local.caller.reopen import Reopener
from local.caller.speech import Kind, SessionSpeech
from voice_agent.signatures import sign

if TYPE_CHECKING:
    from local.caller.phone import Call

MAX_APP_RECONNECTS = 5  # sockets one session may reopen (a guard against a reconnect loop)

__all__ = [
    "MALFORMED_LIMIT",
    "TWILIO_USER_AGENT",
    "CallerIdentity",
    "RelaySession",
    "Reply",
    "ReplyKind",
    "SessionEnd",
    "SessionStatus",
    "Transcript",
    "UpgradeRefusedError",
    "new_sid",
]


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
        self.book = Replies()
        self.protocol_errors: list[ProtocolError] = []
        self.end: SessionEnd | None = None
        self.ended = asyncio.Event()
        self.speech = SessionSpeech(relay, call.speech, self._send, note=call.transcript.note, fail=self.fail_provider)
        self.end_cut_speech = False  # ``end`` arrived while the agent's words were still playing
        self._malformed_in_a_row = 0
        self._opened_at = 0.0
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._reconnect_allowed = relay.flag("applicationReconnect")
        self.reopener = Reopener(
            connect=self._connect,
            send_setup=self._setup_on,
            note=call.transcript.note,
            session_id=self.session_id,
            setup=call.reconnect_setup,
            replay_last=call.replay_last,
        )

    # -- opening ---------------------------------------------------------------------------------

    @property
    def replies(self) -> list[Reply]:
        return self.book.all

    @property
    def language(self) -> str:
        return self.speech.language

    async def open(self) -> None:
        self._ws = await self._connect()
        self._opened_at = time.monotonic()
        kind = "reconnected" if self.reconnect else "connected"
        self.call.transcript.note(f"session {self.number} {kind} ({self.session_id}), setup sent")
        self._reader = asyncio.create_task(self._read(self._ws), name=f"relay-reader-{self.number}")
        await self._send_setup(self.session_id)
        greeting = self.relay.welcome_greeting
        if greeting:
            reply = Reply(caller="", kind="greeting", sent_at=time.monotonic())
            self.replies.append(reply)
            self.call.transcript.agent_line("Agent (welcome greeting)", greeting)
        if await self.speech.check_providers() and greeting:
            await self.speech.playback.play(greeting)

    def fail_unopened(self, code: str, message: str) -> None:
        """Twilio refused the TwiML before any socket (64101): the session failed at once."""
        self.call.transcript.note(f"session {self.number} not started: {message} ({code})")
        self._finish("failed", message, error=(code, message))

    async def _connect(self) -> ClientConnection:
        headers: dict[str, str] = {}
        if self.call.auth_token:
            headers["X-Twilio-Signature"] = sign(self.call.auth_token, self.relay.url)
        try:
            return await connect(
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

    @property
    def app_reconnects(self) -> int:
        """Sockets Twilio reopened by itself for this session."""
        return self.reopener.reopened

    async def _send_setup(self, session_id: str) -> None:
        await self._setup_on(self._require(), session_id)

    async def _setup_on(self, ws: ClientConnection, session_id: str) -> None:
        status = "IN_PROGRESS" if self.reconnect or self.app_reconnects else "RINGING"
        await ws.send(setup_frame(self.call.identity, session_id, status, self.relay.parameters))

    # -- what the caller does ----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A reply is being spoken (no ``last`` yet)."""
        return self.book.busy

    async def prompt(
        self, text: str, *, partial: bool = False, partial_interval_s: float = 0.15, final_after_s: float = 0.5
    ) -> Reply:
        """Caller speech; with ``partial``, cumulative ``last: false`` prompts first (only when the
        TwiML sets ``partialPrompts="true"``: Twilio sends none otherwise): one a word, every
        ``partial_interval_s``, the last one holding every word, and the final prompt (which repeats
        it) ``final_after_s`` later, as Twilio's end-of-turn detection would."""
        if partial and not self.relay.flag("partialPrompts"):
            self.call.transcript.note('partial prompts not sent: the TwiML does not set partialPrompts="true"')
            partial = False
        if partial:
            words = text.split()
            for n in range(1, len(words) + 1):
                if n > 1:
                    await asyncio.sleep(partial_interval_s)
                await self._send(
                    {
                        "type": "prompt",
                        "voicePrompt": " ".join(words[:n]),
                        "lang": self.speech.prompt_lang,
                        "last": False,
                    }
                )
            await asyncio.sleep(final_after_s)
        reply = self._begin(text, "prompt")
        await self._send({"type": "prompt", "voicePrompt": text, "lang": self.speech.prompt_lang, "last": True})
        return reply

    async def dtmf(self, digit: str) -> Reply | None:
        """A key press; ``None`` when the TwiML did not enable ``dtmfDetection`` (nothing is sent)."""
        if not self.relay.flag("dtmfDetection"):
            self.call.transcript.note(f'key {digit} not delivered: the TwiML does not set dtmfDetection="true"')
            return None
        if self.busy and self.speech.interruptible in ("any", "dtmf"):
            await self.interrupt()
        elif self.speech.playback.speaking and self._greeting_interruptible("dtmf"):
            await self.speech.playback.cut()  # a key press stops the welcome greeting
        reply = self._begin(f"[presses {digit}]", "dtmf")
        await self._send({"type": "dtmf", "digit": digit})
        return reply

    def _greeting_interruptible(self, by: str) -> bool:
        mode = self.relay.attributes.get("welcomeGreetingInterruptible", "any").lower()
        return mode in ("any", "true", by)

    async def interrupt(self) -> Reply | None:
        """Barge in on the reply being spoken: ``interrupt`` with what was heard so far. Twilio
        sends one only while speech is playing: before the first text frame there is nothing to
        interrupt (the caller's next words simply arrive as a newer prompt)."""
        reply = self.book.current
        if reply is None or reply.done.is_set() or reply.first_text_at is None:
            return None
        if self.speech.interruptible == "none":
            self.call.transcript.note('barge-in ignored: the session is interruptible="none"')
            return None
        now = time.monotonic()
        heard = reply.text
        started = reply.first_text_at or now
        reply.interrupted = True
        reply.heard = heard
        reply.last_at = now
        self.book.interrupted = reply
        self.book.current = None
        reply.done.set()
        await self.speech.playback.cut()
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

    async def drop(self, *, app_reachable: bool = False) -> None:
        """The network drops the socket: no close frame (the app sees 1006). With
        ``applicationReconnect`` and ``app_reachable``, Twilio opens a new socket to the same URL by
        itself (``wait_reconnected``); otherwise its reconnect fails and ``/action`` gets 64105."""
        ws = self._require()
        if app_reachable and self._reconnect_allowed:
            self.reopener.done.clear()
            self.reopener.holding = True  # from now on the caller's frames wait for the new socket
            ws.transport.abort()
            return
        self._reconnect_allowed = False
        self._finish("failed", "the socket dropped", error=("64105", "Websocket ended"))
        ws.transport.abort()
        await self._join_reader()

    async def wait_reconnected(self, timeout_s: float) -> bool:
        """Until Twilio's application reconnect opened a new socket (False if it did not in time)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.reopener.done.wait(), timeout_s)
        return self.reopener.done.is_set()

    async def provider_fails(self, kind: Kind) -> None:
        """The provider this session speaks (``tts``) or listens (``stt``) with fails now: Twilio
        fails over to the language's backup if it can, or the session fails with its error code."""
        self.call.speech.outage.down.add(self.speech.voice.provider(kind))
        await self.speech.check_providers()

    async def fail_provider(self, code: str | None, message: str) -> None:
        """A speech provider failed with no backup left: Twilio ends the session (``/action``)."""
        self._reconnect_allowed = False
        self._finish("failed", message, error=(code or "", message), close_code=1011)
        with contextlib.suppress(ConnectionClosed, OSError, RuntimeError):
            await self._require().close(1011, "Speech provider failed")

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
        reply = self.book.begin(caller, kind)
        self.call.transcript.caller_input(self, reply)
        return reply

    async def _send(self, message: Mapping[str, Any]) -> None:
        frame = json.dumps(message, separators=(",", ":"))
        if self.reopener.holding:
            self.reopener.hold(frame)  # Twilio holds up to 500 events while it reconnects
            return
        ws = self._require()
        await ws.send(frame)
        self.reopener.sent(frame)

    async def _read(self, ws: ClientConnection) -> None:
        """Read the agent's frames; when the socket closes while the session goes on, Twilio's
        application reconnect (if the TwiML asks for it) opens a new one, up to a few times."""
        for _ in range(MAX_APP_RECONNECTS + 1):
            close_code = await self._read_socket(ws)
            if self.ended.is_set():
                return
            reopened = await self._reopen() if self._reconnect_allowed else None
            if reopened is None:
                reason = f"the app side closed the socket ({close_code or 1006})"
                self._finish("failed", reason, error=("64105", "Websocket ended"), close_code=close_code)
                return
            ws = reopened
        self._finish("failed", "too many application reconnects", error=("64105", "Websocket ended"))

    async def _read_socket(self, ws: ClientConnection) -> int | None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                await self._on_frame(raw)
        return ws.close_code

    async def _reopen(self) -> ClientConnection | None:
        ws = await self.reopener.reopen()
        if ws is not None:
            self._ws = ws
        return ws

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
        reply = self.book.target()
        if reply is self.book.interrupted:
            reply.late_frames += 1
            reply.late_last = reply.late_last or (frame.type == "text" and frame.last)
            return  # Twilio purged this reply's speech on the barge-in
        reply.frames.append(frame)
        reply.arrived.set()
        self.call.transcript.frame(self, reply, frame)
        if frame.type == "text" and reply.first_text_at is None:
            reply.first_text_at = now
        await self._apply(frame)
        if frame.type == "text" and frame.last:
            reply.completed = True
            self._close_reply(reply, now)

    async def _apply(self, frame: Frame) -> None:
        """What Twilio does with a valid frame beyond recording it: speak text, switch language,
        apply a configuration or hints."""
        match frame.type:
            case "text":
                await self.speech.playback.play(frame.token)
            case "language":
                await self.speech.on_language(frame.data)
            case "config":
                await self.speech.on_config(frame.data)
            case "hints":
                await self.speech.on_hints(frame.data)

    async def _on_end(self, frame: Frame, now: float) -> None:
        """``end`` closes the session; it belongs to the reply that led to it (often after that
        reply's ``last``, once its speech has played)."""
        answered = [r for r in self.replies if r.kind in ("prompt", "dtmf")]
        reply = self.book.current or (answered[-1] if answered else None)
        if reply is not None and not reply.interrupted:
            reply.frames.append(frame)
            reply.ended = True
            self.call.transcript.frame(self, reply, frame)
            if reply is self.book.current:
                self._close_reply(reply, now)
            else:
                reply.last_at = now
        handoff = frame.data.get("handoffData")
        self.end_cut_speech = self.speech.playback.speaking
        self._finish("ended", "the agent ended the session", handoff=handoff, close_code=1000)
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._require().close(1000, "Closing websocket session")

    def _close_reply(self, reply: Reply, now: float) -> None:
        self.book.close(reply, now)
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
        if self.book.current is not None and not self.book.current.done.is_set():
            self.book.current.done.set()
        self.speech.playback.stop()
        self.ended.set()

    async def _join_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
