"""One simulated phone call: the webhook, the relay sessions and the ``<Connect action>`` callbacks.

:class:`Call` plays Twilio's call engine (it follows TwiML); :class:`RelaySession` plays
ConversationRelay on one WebSocket. A *driver* (a script, or a person at a terminal) decides what
the caller says in each session; the call does everything Twilio would do around it.

Fidelity notes (Twilio's sources, and which of these are unverified, in ``docs/protocol.md``):

- the upgrade is signed over the exact ``url`` from the TwiML with no parameters; webhooks over
  the full URL and the form parameters ("Signatures");
- ``setup`` carries ``callStatus`` ``RINGING`` on the first session and ``IN_PROGRESS`` after a
  reconnect, with a new ``sessionId`` and the same ``callSid`` ("Messages Twilio sends");
- on ``end`` the socket is closed with 1000 and the action gets ``SessionStatus=ended`` (plus
  ``HandoffData``); a dropped socket gives ``failed`` / 64105; a hang-up ``completed`` with
  ``CallStatus=completed`` ("Webhooks Twilio posts");
- an invalid frame from the app is answered with an ``error`` message, and ten in a row close the
  socket with 1007 ("Error codes and socket closes");
- ``dtmf`` frames are sent only with ``dtmfDetection="true"``; no ``interrupt`` is sent when the
  TwiML makes speech uninterruptible.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from local.caller import twiml
from local.caller.frames import ProtocolError
from local.caller.reopen import ReconnectSetup
from local.caller.session import (
    MALFORMED_LIMIT,
    TWILIO_USER_AGENT,
    CallerIdentity,
    RelaySession,
    Reply,
    ReplyKind,
    SessionEnd,
    SessionStatus,
    Transcript,
    UpgradeRefusedError,
    new_sid,
)
from local.caller.speech import CallSpeech, twiml_problem
from voice_agent.signatures import sign

MAX_DOCUMENTS = 30  # TwiML documents per call: a guard against reconnect loops
SPEECH_WORDS_PER_S = 2.5
# Without a webhook there is no TwiML: direct calls act as if it enabled everything the caller can do.
DIRECT_RELAY_ATTRIBUTES = {"dtmfDetection": "true", "interruptible": "any", "partialPrompts": "true"}

Outcome = Literal["transferred", "hung_up", "ended", "rejected", "connect_failed", "webhook_failed", "error"]

__all__ = [
    "DIRECT_RELAY_ATTRIBUTES",
    "MALFORMED_LIMIT",
    "TWILIO_USER_AGENT",
    "Call",
    "CallResult",
    "CallerIdentity",
    "Driver",
    "Outcome",
    "RelaySession",
    "Reply",
    "ReplyKind",
    "SessionEnd",
    "SessionStatus",
    "Transcript",
    "UpgradeRefusedError",
    "new_sid",
    "speech_seconds",
]


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
        speech: CallSpeech | None = None,
        reconnect_setup: ReconnectSetup = "same-session",
        replay_last: int = 0,
    ) -> None:
        self.transcript = transcript
        self.auth_token = auth_token
        self.identity = identity or CallerIdentity()
        self.dial_status = dial_status  # what a <Dial>ed person does: completed | no-answer | busy
        # Twilio's speech side for this call: what is broken, the failovers used, the speaking rate.
        self.speech = speech or CallSpeech()
        # After Twilio's application reconnect, what the new socket gets first (undocumented: every
        # plausible answer is playable): a setup of the same session, of a new one, or none; and how
        # many frames sent just before the drop are sent again (at-least-once delivery).
        self.reconnect_setup: ReconnectSetup = reconnect_setup
        self.replay_last = replay_last
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
                case twiml.Say() | twiml.Play() | twiml.Pause():
                    await self._play(verb)
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
                case twiml.Hangup() | twiml.Reject() | twiml.Unsupported():
                    self._stop_on(verb)
                    return None
        self._over("ended", "end of the TwiML document")
        return None

    async def _play(self, verb: twiml.Say | twiml.Play | twiml.Pause) -> None:
        match verb:
            case twiml.Say():
                self.transcript.agent_line("Agent (TwiML <Say>)", verb.text)
            case twiml.Play():
                self.transcript.note(f"<Play> {verb.url}")
            case twiml.Pause():
                await asyncio.sleep(min(verb.seconds, self._pause_cap_s))

    def _stop_on(self, verb: twiml.Hangup | twiml.Reject | twiml.Unsupported) -> None:
        match verb:
            case twiml.Hangup():
                self._over("ended", "<Hangup/>")
            case twiml.Reject():
                self._over("rejected", verb.reason)
            case twiml.Unsupported():
                self._over("error", f"<{verb.tag}> is not a verb this caller follows")

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
        refused = twiml_problem(relay, self.speech.outage)
        if refused is not None:  # Twilio refuses the TwiML before any socket (64101)
            session.fail_unopened(*refused)
            self._result.sessions.append(session)
            return session
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
        if end.error_code:
            params["ErrorCode"] = end.error_code
        if end.error_code is not None:
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
