"""One simulated phone call: the webhook, the relay sessions and the ``<Connect action>`` callbacks.

:class:`Call` plays Twilio's call engine (it follows TwiML); :class:`RelaySession` plays
ConversationRelay on one WebSocket. A *driver* (a script, or a person at a terminal) decides what
the caller says in each session; the call does everything Twilio would do around it.

Fidelity notes (sources in ``shared/reference/conversation-relay.md``):

- the upgrade is signed over the exact ``url`` from the TwiML with no parameters; webhooks over
  the full URL and the form parameters (section 6);
- ``setup`` carries ``callStatus`` ``RINGING`` on the first session and ``IN_PROGRESS`` after a
  reconnect, with a new ``sessionId`` and the same ``callSid`` (sections 2.1 and 5);
- on ``end`` the socket is closed with 1000 and the action gets ``SessionStatus=ended`` (plus
  ``HandoffData``); a dropped socket gives ``failed`` / 64105; a hang-up ``completed`` with
  ``CallStatus=completed`` (section 5);
- an invalid frame from the app is answered with an ``error`` message, and ten in a row close the
  socket with 1007 (section 3);
- ``dtmf`` frames are sent only with ``dtmfDetection="true"``; no ``interrupt`` is sent when the
  TwiML makes speech uninterruptible.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local.caller import twiml
from local.caller.frames import Frame, ProtocolError, validate
from voice_agent.signatures import sign

TWILIO_USER_AGENT = "Jetty/11.0.24"  # what ConversationRelay's client sends on the upgrade
MALFORMED_LIMIT = 10  # consecutive invalid frames after which Twilio closes the session (1007)
MAX_DOCUMENTS = 30  # TwiML documents per call: a guard against reconnect loops
SPEECH_WORDS_PER_S = 2.5
# Without a webhook there is no TwiML: direct calls act as if it enabled everything the caller can do.
DIRECT_RELAY_ATTRIBUTES = {"dtmfDetection": "true", "interruptible": "any", "partialPrompts": "true"}

SessionStatus = Literal["completed", "ended", "failed"]
Outcome = Literal["transferred", "hung_up", "ended", "rejected", "connect_failed", "webhook_failed", "error"]
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


class _NoDriver:
    async def on_session(self, session: RelaySession) -> None:
        return None


class Driver(Protocol):
    """Decides what the caller does in a session. Returning while the session is still open means
    the caller is done: the call hangs up."""

    async def on_session(self, session: RelaySession) -> None: ...


@dataclass
class CallResult:
    outcome: Outcome
    call_sid: str = ""
    detail: str = ""
    dial_target: str | None = None
    sessions: list[RelaySession] = field(default_factory=list)
    protocol_errors: list[ProtocolError] = field(default_factory=list)
    webhook_statuses: list[tuple[str, int]] = field(default_factory=list)
    upgrade_status: int | None = None
    duration_s: float = 0.0

    @property
    def reconnects(self) -> int:
        return max(0, len(self.sessions) - 1)

    def replies(self) -> list[Reply]:
        return [r for s in self.sessions for r in s.replies if r.kind in ("prompt", "dtmf")]


class Call:
    """One call, followed the way Twilio follows TwiML."""

    def __init__(
        self,
        *,
        transcript: Transcript,
        auth_token: str | None,
        identity: CallerIdentity | None = None,
        http: httpx.AsyncClient | None = None,
        pause_cap_s: float = 0.5,
        dial_status: str = "completed",
    ) -> None:
        self.transcript = transcript
        self.auth_token = auth_token
        self.identity = identity or CallerIdentity()
        self.dial_status = dial_status  # what a <Dial>ed person does: completed | no-answer | busy
        self.protocol_errors: list[ProtocolError] = []
        self._http = http
        self._pause_cap_s = pause_cap_s
        self._result = CallResult(outcome="error", call_sid=self.identity.call_sid)
        self._started = 0.0

    # -- the two ways to place a call ------------------------------------------------------------

    async def dial(self, voice_url: str, driver: Driver) -> CallResult:
        """Post the voice webhook and follow its TwiML until the call is over."""
        self._started = time.monotonic()
        self.transcript.note(
            f"Call {self.identity.call_sid} from {self.identity.from_number} to {self.identity.to_number}"
        )
        async with self._client() as http:
            params = self.call_params("ringing")
            document = await self._fetch(http, voice_url, "POST", params)
            documents = 0
            while document is not None:
                documents += 1
                if documents > MAX_DOCUMENTS:
                    return self._over("error", f"more than {MAX_DOCUMENTS} TwiML documents: a reconnect loop?")
                url, verbs = document
                document = await self._follow(http, url, verbs, driver)
            return self._result

    async def direct(
        self, relay: twiml.ConversationRelay, driver: Driver, *, reconnect_on_failure: int = 2
    ) -> CallResult:
        """No webhook: open the relay socket directly, reconnecting after a failed session as if
        ``/action`` had answered with a new ``<Connect>``."""
        self._started = time.monotonic()
        self.transcript.note(f"Call {self.identity.call_sid} (direct to {relay.url}, no webhook)")
        while True:
            session = await self._run_session(relay, driver)
            if session is None or session.end is None:
                return self._result
            end = session.end
            if end.status == "failed" and self._result.reconnects < reconnect_on_failure:
                self.transcript.note("reconnecting (as if /action returned a new <Connect>)")
                continue
            outcome: Outcome = "hung_up" if end.status == "completed" else "ended"
            return self._over(outcome, end.reason)

    # -- TwiML -----------------------------------------------------------------------------------

    async def _follow(
        self, http: httpx.AsyncClient, url: str, verbs: list[twiml.Verb], driver: Driver
    ) -> tuple[str, list[twiml.Verb]] | None:
        for verb in verbs:
            match verb:
                case twiml.Say():
                    self.transcript.agent_line("Agent (TwiML <Say>)", verb.text)
                case twiml.Play():
                    self.transcript.note(f"<Play> {verb.url}")
                case twiml.Pause():
                    await asyncio.sleep(min(verb.seconds, self._pause_cap_s))
                case twiml.Connect():
                    session = await self._run_session(verb.relay, driver)
                    if session is None or session.end is None:
                        return None
                    if verb.action or session.end.status == "completed":
                        return await self._after_connect(http, url, verb, session, session.end)
                case twiml.Dial():
                    return await self._dial(http, url, verb)
                case twiml.Redirect():
                    params = self.call_params("in-progress")
                    return await self._fetch(http, urljoin(url, verb.url), verb.method, params)
                case twiml.Hangup():
                    self._over("ended", "<Hangup/>")
                    return None
                case twiml.Reject():
                    self._over("rejected", verb.reason)
                    return None
                case twiml.Unsupported():
                    self._over("error", f"<{verb.tag}> is not a verb this caller follows")
                    return None
        self._over("ended", "end of the TwiML document")
        return None

    async def _dial(self, http: httpx.AsyncClient, url: str, verb: twiml.Dial) -> tuple[str, list[twiml.Verb]] | None:
        """The call is transferred. The simulated person answers (``dial_status``), talks, and hangs
        up; then, as Twilio does, the ``<Dial action>`` gets ``DialCallStatus`` and its TwiML runs."""
        self.transcript.note(f"transferred to {verb.target} (<Dial>): {self.dial_status}")
        self._result.dial_target = verb.target
        answered = self.dial_status in ("completed", "answered")
        self._over("transferred" if answered else "ended", f"<Dial> {verb.target}: {self.dial_status}")
        action = verb.attributes.get("action")
        if not action:
            return None
        params = self.call_params("in-progress")
        params.update(
            {
                "DialCallStatus": self.dial_status,
                "DialCallSid": new_sid("CA"),
                "DialCallDuration": "42" if answered else "0",
            }
        )
        outcome = self._result.outcome
        document = await self._fetch(http, urljoin(url, action), verb.attributes.get("method", "POST").upper(), params)
        if document is not None and answered:
            # The transfer happened; whatever the action says next (normally <Hangup/>) ends the call.
            await self._follow(http, document[0], document[1], _NoDriver())
            self._over(outcome, f"<Dial> {verb.target}: {self.dial_status}")
            return None
        return document

    async def _after_connect(
        self, http: httpx.AsyncClient, url: str, verb: twiml.Connect, session: RelaySession, end: SessionEnd
    ) -> tuple[str, list[twiml.Verb]] | None:
        """The session is over: request ``<Connect action>`` and follow its TwiML (a hung-up call
        is still reported to the action URL, but nothing it returns can run)."""
        document = None
        if verb.action:
            call_status = "completed" if end.status == "completed" else "in-progress"
            params = self._action_params(session, end, call_status)
            document = await self._fetch(http, urljoin(url, verb.action), verb.method, params)
        if end.status == "completed":
            self._over("hung_up", "the caller hung up")
            return None
        return document

    async def _fetch(
        self, http: httpx.AsyncClient, url: str, method: str, params: dict[str, str]
    ) -> tuple[str, list[twiml.Verb]] | None:
        path = urlsplit(url).path or "/"
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if method == "GET":
            full = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
            if self.auth_token:
                headers["X-Twilio-Signature"] = sign(self.auth_token, full)
            request = http.build_request("GET", full, headers=headers)
        else:
            if self.auth_token:
                headers["X-Twilio-Signature"] = sign(self.auth_token, url, params)
            request = http.build_request("POST", url, data=params, headers=headers)
        try:
            response = await http.send(request)
        except httpx.HTTPError as exc:
            self._over("webhook_failed", f"{method} {path}: {type(exc).__name__}")
            return None
        self._result.webhook_statuses.append((path, response.status_code))
        if response.status_code != 200:
            self.transcript.note(f"{method} {path} -> HTTP {response.status_code}")
            self._over("webhook_failed", f"{method} {path} answered HTTP {response.status_code}")
            return None
        try:
            verbs = twiml.parse(response.text)
        except twiml.TwiMLError as exc:
            self._over("error", f"{method} {path}: {exc}")
            return None
        self.transcript.note(f"{method} {path} -> {twiml.describe(verbs)}")
        return url, verbs

    # -- sessions --------------------------------------------------------------------------------

    async def _run_session(self, relay: twiml.ConversationRelay, driver: Driver) -> RelaySession | None:
        number = len(self._result.sessions) + 1
        session = RelaySession(call=self, relay=relay, number=number, reconnect=number > 1)
        try:
            await session.open()
        except UpgradeRefusedError as exc:
            self._result.upgrade_status = exc.status
            self.transcript.note(f"WebSocket upgrade to {relay.url} refused: HTTP {exc.status}")
            self._over("connect_failed", f"upgrade refused with HTTP {exc.status} (Twilio error 64102)")
            return None
        except OSError as exc:
            self._over("connect_failed", f"cannot reach {relay.url}: {exc}")
            return None
        self._result.sessions.append(session)
        try:
            await driver.on_session(session)
            if not session.ended.is_set():
                await session.hangup()
        except BaseException:
            if not session.ended.is_set():
                with contextlib.suppress(Exception):
                    await session.hangup()
            raise
        end = session.end
        if end is not None:
            detail = f"session {number} {end.status}: {end.reason}"
            if end.handoff_data:
                detail += f" (handoffData {end.handoff_data})"
            if end.error_code:
                detail += f" (ErrorCode {end.error_code})"
            self.transcript.note(detail)
        return session

    # -- parameters ------------------------------------------------------------------------------

    def call_params(self, call_status: str) -> dict[str, str]:
        """What Twilio posts with every webhook of this call (the form its signature covers)."""
        i = self.identity
        return {
            "AccountSid": i.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": i.call_sid,
            "CallStatus": call_status,
            "Called": i.to_number,
            "Caller": i.from_number,
            "Direction": i.direction,
            "From": i.from_number,
            "To": i.to_number,
        }

    def _action_params(self, session: RelaySession, end: SessionEnd, call_status: str) -> dict[str, str]:
        params = self.call_params(call_status)
        params["SessionId"] = session.session_id
        params["SessionStatus"] = end.status
        params["SessionDuration"] = str(int(end.duration_s))
        if end.handoff_data is not None:
            params["HandoffData"] = end.handoff_data
        if end.error_code is not None:
            params["ErrorCode"] = end.error_code
            params["ErrorMessage"] = end.error_message or ""
        return params

    def _over(self, outcome: Outcome, detail: str) -> CallResult:
        self._result.outcome = outcome
        self._result.detail = detail
        self._result.protocol_errors = self.protocol_errors
        self._result.duration_s = time.monotonic() - self._started
        return self._result

    @contextlib.asynccontextmanager
    async def _client(self) -> Any:
        if self._http is not None:
            yield self._http
            return
        async with httpx.AsyncClient(timeout=httpx.Timeout(15.0)) as http:
            yield http


def speech_seconds(text: str) -> float:
    """How long a voice takes to say ``text`` (for a caller who listens before answering)."""
    return len(text.split()) / SPEECH_WORDS_PER_S
