"""Prove a deployed stack works end to end, driving it the way Twilio does.

    TWILIO_AUTH_TOKEN=... python -m infra.cli.smoke [--stack-outputs cdk-outputs.json]   # make smoke

Reads the stack's outputs, then with the project's simulated Twilio caller (``local.caller``):

1. a signed ``POST /voice``: expects TwiML ``<Connect action><ConversationRelay url>``, the action
   absolute under the webhook, the relay URL the stack's ``RelayUrl``;
2. the same form unsigned: expects 403;
3. a WebSocket upgrade to the TwiML's relay URL, signed over exactly that URL: expects it to open;
4. the upgrade unsigned: expects a refusal;
5. one short scripted call through the real API Gateway, Lambda, DynamoDB and model: the welcome
   greeting, a turn, a barge-in, a turn after it, a hang-up and its ``/action`` callback;
6. the call's record in the bucket, once the stack has one (``CallRecordsBucketName``).

It prints one line per check and the time to first text per turn; a failed check says what to
check next (for a refused upgrade: the URL it was signed over, and from the ``$connect`` logs the
URL the function checked and the header names it saw). Exit status: 0 passed, 1 a check failed,
2 it could not start (no outputs, no token).

The auth token is read from the environment and never printed; neither is anything said on the
call (the report holds timings, statuses and URLs only). The call is placed with fictional
numbers and a made-up CallSid: nothing reaches Twilio, and no phone rings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from infra import outputs
from infra.cli.stack_outputs import CliError, add_stack_arguments, load_stack, require
from local.caller import twiml
from local.caller.phone import TWILIO_USER_AGENT, Call, CallerIdentity, CallResult, RelaySession, Reply
from voice_agent.log import mask_phone
from voice_agent.signatures import sign

AUTH_TOKEN_VARIABLE: Final = "TWILIO_AUTH_TOKEN"  # noqa: S105 - the variable's name
# What the caller says: plain questions any agent answers, the second one asking for a long reply
# to talk over. None of them says goodbye or asks for a person (that would end the session early).
FIRST_PROMPT: Final = "Hello, can you hear me?"
BARGE_IN_PROMPT: Final = "Tell me about the store and what you sell, in a few sentences."
LAST_PROMPT: Final = "Thanks. Are you still there?"
REFUSAL_LINE: Final = "websocket upgrade refused"  # what $connect logs (voice_agent/entry/ws_connect.py)
HTTP_TIMEOUT_S: Final = 15.0  # API Gateway gives the webhook 30 s; a cold start takes a few
UPGRADE_TIMEOUT_S: Final = 35.0  # $connect may take up to API Gateway's 29 s
MAX_RECORD_PAGES: Final = 10  # 10,000 keys: the record check never lists a whole busy bucket

_PHONE = re.compile(r"\+\d{7,15}")  # a number in the call's notes (the caller's, a transfer target)

Status = Literal["pass", "fail", "skip"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    hints: list[str] = field(default_factory=list)


@dataclass
class Report:
    stack: str
    checks: list[Check] = field(default_factory=list)
    first_text_ms: list[tuple[str, float | None]] = field(default_factory=list)
    call_sid: str | None = None
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def add(self, name: str, status: Status, detail: str, *hints: str) -> Check:
        check = Check(name, status, detail, list(hints))
        self.checks.append(check)
        return check

    def lines(self) -> list[str]:
        out = [f"make smoke: stack {self.stack}"]
        for c in self.checks:
            out.append(f"  {c.status.upper():<4}  {c.name}: {c.detail}")
            out += [f"          {hint}" for hint in c.hints]
        if self.first_text_ms:
            turns = ", ".join(f"{label} {_ms(ms)}" for label, ms in self.first_text_ms)
            out.append(f"  time to first text: {turns}")
        failed = sum(c.status == "fail" for c in self.checks)
        skipped = sum(c.status == "skip" for c in self.checks)
        verdict = "PASSED" if self.passed else f"FAILED ({failed} of {len(self.checks)} checks)"
        extra = f", {skipped} skipped" if skipped else ""
        out.append(f"{verdict}{extra} in {self.duration_s:.1f} s")
        return out


def _ms(value: float | None) -> str:
    return "none" if value is None else f"{value:.0f} ms"


@dataclass(frozen=True)
class Target:
    """The deployed system, as its stack outputs describe it."""

    stack: str
    voice_url: str
    webhook_base_url: str
    relay_url: str
    connect_log_group: str | None = None
    records_bucket: str | None = None

    @classmethod
    def from_outputs(cls, stack: str, values: Mapping[str, str]) -> Target:
        voice_url = require(values, outputs.WEBHOOK_VOICE_URL)
        base = values.get(outputs.WEBHOOK_BASE_URL) or voice_url.rsplit("/", 1)[0]
        return cls(
            stack=stack,
            voice_url=voice_url,
            webhook_base_url=base.rstrip("/"),
            relay_url=require(values, outputs.RELAY_URL),
            connect_log_group=values.get(outputs.CONNECT_LOG_GROUP) or None,
            records_bucket=values.get(outputs.CALL_RECORDS_BUCKET) or None,
        )


@dataclass(frozen=True)
class Options:
    reply_timeout_s: float = 20.0  # a cold message function plus a model's first token, with room
    greeting_s: float = 2.0  # the caller listens to the greeting first (setup warms the model meanwhile)
    record_timeout_s: float = 60.0
    sign_upgrade_over: str | None = None  # sign the upgrade over this URL instead of the TwiML's


class RefusalLog(Protocol):
    def latest(self, since_ms: int) -> Mapping[str, Any] | None:
        """The newest ``websocket upgrade refused`` line ``$connect`` logged since ``since_ms``
        (epoch milliseconds), or None."""


class CloudWatchRefusals:
    """Reads the refusal line from the connect function's log group (CloudWatch Logs takes a few
    seconds to show a line, so it looks again, for at most ``wait_s``)."""

    def __init__(
        self,
        client: Callable[[], Any],
        log_group: str,
        *,
        wait_s: float = 20.0,
        poll_s: float = 2.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._group = log_group
        self._attempts = max(1, int(wait_s / poll_s) + 1)
        self._poll_s = poll_s
        self._sleep = sleep
        self.error: str | None = None

    def latest(self, since_ms: int) -> Mapping[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self._client()
            for attempt in range(self._attempts):
                if attempt:
                    self._sleep(self._poll_s)
                found = self._search(client, since_ms)
                if found is not None:
                    return found
        except (BotoCoreError, ClientError) as exc:
            self.error = f"could not read {self._group} ({aws_error(exc)})"
        return None

    def _search(self, client: Any, since_ms: int) -> Mapping[str, Any] | None:
        request: dict[str, Any] = {
            "logGroupName": self._group,
            "startTime": since_ms,
            "filterPattern": f'{{ $.message = "{REFUSAL_LINE}" }}',
        }
        newest: tuple[int, Mapping[str, Any]] | None = None
        for _ in range(5):  # pages; a smoke run produces one or two lines
            page = client.filter_log_events(**request)
            for event in page.get("events", []):
                line = _json(event.get("message", ""))
                if line is not None and (newest is None or event.get("timestamp", 0) >= newest[0]):
                    newest = (int(event.get("timestamp", 0)), line)
            if not page.get("nextToken"):
                break
            request["nextToken"] = page["nextToken"]
        return None if newest is None else newest[1]


def aws_error(exc: Exception) -> str:
    """An AWS error's code (AccessDenied, ExpiredToken, ...), or its type when it has none."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) if code else type(exc).__name__


def _json(text: str) -> Mapping[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("message") == REFUSAL_LINE else None


def find_call_record(
    s3: Any,
    bucket: str,
    call_sid: str,
    *,
    timeout_s: float,
    poll_s: float = 3.0,
    sleep: Callable[[float], None] = time.sleep,
    prefixes: Sequence[str] = ("",),
) -> str | None:
    """The key of an object in ``bucket`` whose name holds ``call_sid`` (the record is written after
    the call, so it looks again for up to ``timeout_s``), listing at most ``MAX_RECORD_PAGES`` per
    prefix. ``prefixes``: where to look (the stack's records are under ``calls/<day of the call>/``;
    the smoke call looks under today's and yesterday's, UTC)."""
    attempts = max(1, int(timeout_s / poll_s) + 1)
    for attempt in range(attempts):
        if attempt:
            sleep(poll_s)
        for prefix in prefixes:
            request: dict[str, Any] = {"Bucket": bucket, **({"Prefix": prefix} if prefix else {})}
            for _ in range(MAX_RECORD_PAGES):
                page = s3.list_objects_v2(**request)
                for item in page.get("Contents", []):
                    if call_sid in item["Key"]:
                        return str(item["Key"])
                if not page.get("IsTruncated"):
                    break
                request["ContinuationToken"] = page["NextContinuationToken"]
    return None


def record_prefixes(now: float | None = None) -> tuple[str, ...]:
    """Where a call placed now has its record: under the call's start day, today or (just after
    midnight UTC) yesterday."""
    from datetime import UTC, datetime, timedelta

    today = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC).date()
    return tuple(f"calls/{day.isoformat()}/" for day in (today, today - timedelta(days=1)))


# -- the checks ------------------------------------------------------------------------------------


@dataclass
class _Voice:
    status: int
    verbs: list[twiml.Verb] = field(default_factory=list)
    error: str | None = None

    @property
    def connect(self) -> twiml.Connect | None:
        return next((v for v in self.verbs if isinstance(v, twiml.Connect)), None)


class _Quiet:
    """The call's transcript, kept out of the report: only notes (statuses, URLs) are kept, for
    a failure's explanation; speech is never stored or printed."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        text = text.split(" (handoffData", 1)[0]  # the model's words about the call stay out
        self.notes.append(_PHONE.sub(lambda m: mask_phone(m.group()) or "", text))

    def agent_line(self, label: str, text: str) -> None:
        return None

    def caller_input(self, session: RelaySession, reply: Reply) -> None:
        return None

    def frame(self, session: RelaySession, reply: Reply, frame: Any) -> None:
        return None

    def reply_done(self, session: RelaySession, reply: Reply) -> None:
        return None

    def protocol_error(self, session: RelaySession, error: Any) -> None:
        self.notes.append(f"invalid frame from the agent: {error.reason}")


async def post_voice(http: httpx.AsyncClient, call: Call, url: str, *, signed_with: str | None) -> _Voice:
    """``POST /voice`` with the form Twilio sends for a ringing call, signed or not."""
    form = call.call_params("ringing")
    headers = {"User-Agent": "TwilioProxy/1.1"}
    if signed_with is not None:
        headers["X-Twilio-Signature"] = sign(signed_with, url, form)
    try:
        response = await http.post(url, data=form, headers=headers)
    except httpx.HTTPError as exc:
        return _Voice(status=0, error=f"{type(exc).__name__}: {exc}")
    if response.status_code != 200:
        return _Voice(status=response.status_code)
    try:
        return _Voice(status=200, verbs=twiml.parse(response.text))
    except twiml.TwiMLError as exc:
        return _Voice(status=200, error=f"not TwiML the caller can follow: {exc}")


async def try_upgrade(url: str, signature: str | None) -> tuple[int, str]:
    """Open and close the socket: (101, "") when it opened, else the HTTP status (0 when there was
    none) and what went wrong."""
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    try:
        async with connect(
            url,
            additional_headers=headers,
            user_agent_header=TWILIO_USER_AGENT,
            open_timeout=UPGRADE_TIMEOUT_S,
            ping_interval=None,
            compression=None,
        ) as ws:
            await ws.close(1000, "smoke test")
            return 101, ""
    except InvalidStatus as exc:
        return exc.response.status_code, f"HTTP {exc.response.status_code}"
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"


class SmokeScript:
    """The caller's side of the scripted call: listen to the greeting, a turn, a barge-in, a turn
    after it, then hang up (by returning while the session is open)."""

    def __init__(self, options: Options, apology: str) -> None:
        self.options = options
        self.apology = apology
        self.problems: list[str] = []
        self.turns: list[tuple[str, Reply]] = []
        self.greeting = False
        self.barged_in = False
        self.sessions = 0

    async def on_session(self, session: RelaySession) -> None:
        self.sessions += 1
        if self.sessions > 1:
            self.problems.append("the call reconnected (the first socket dropped; /action returned a new <Connect>)")
            return
        self.greeting = bool(session.relay.welcome_greeting)
        await asyncio.sleep(self.options.greeting_s)
        if session.ended.is_set():
            reason = session.end.reason if session.end else "closed"
            self.problems.append(f"the socket closed during the greeting, right after setup ({reason})")
            return
        if await self._turn(session, "turn 1", FIRST_PROMPT) and await self._barge_in(session):
            await self._turn(session, "after the barge-in", LAST_PROMPT)

    async def _turn(self, session: RelaySession, label: str, text: str) -> bool:
        timeout = self.options.reply_timeout_s
        reply = await session.prompt(text)
        completed = await session.wait(reply, timeout)
        self.turns.append((label, reply))
        if not reply.text:
            self.problems.append(f"{label}: no reply within {timeout:g} s of the prompt")
            return False
        if reply.ended:
            self.problems.append(f"{label}: the agent ended the session instead of answering")
            return False
        if not completed:
            self.problems.append(f"{label}: the reply started but did not finish (no last: true) in {timeout:g} s")
            return False
        if reply.text.strip() == self.apology:
            self.problems.append(f"{label}: the agent answered with its apology line: the model request failed")
            return False
        return True

    async def _barge_in(self, session: RelaySession) -> bool:
        timeout = self.options.reply_timeout_s
        reply = await session.prompt(BARGE_IN_PROMPT)
        heard = await reply.until_heard(1, timeout)
        self.turns.append(("barge-in", reply))
        if not heard:
            self.problems.append(f"barge-in: no reply to talk over within {timeout:g} s of the prompt")
            return False
        if reply.done.is_set():
            self.problems.append("barge-in: the whole reply came in one frame; there was nothing left to interrupt")
            return False
        self.barged_in = await session.interrupt() is not None
        if not self.barged_in:
            self.problems.append("barge-in: the interrupt was not sent")
        return self.barged_in


def _budget_s(options: Options) -> float:
    """Every step is bounded on its own; this caps the whole run at the sum of the bounds."""
    http_steps = 6 * HTTP_TIMEOUT_S
    upgrades = 3 * UPGRADE_TIMEOUT_S
    call = options.greeting_s + 3 * options.reply_timeout_s + 30
    lookups = 30 + options.record_timeout_s
    return http_steps + upgrades + call + lookups


def _apology() -> str:
    from voice_agent.agent.config import AGENT

    return AGENT.lines.apology


async def run_smoke(
    target: Target,
    auth_token: str,
    options: Options | None = None,
    *,
    refusals: RefusalLog | None = None,
    s3: Callable[[], Any] | None = None,
) -> Report:
    options = options or Options()
    report = Report(stack=target.stack)
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(HTTP_TIMEOUT_S)) as http:
            await asyncio.wait_for(
                _run(report, target=target, token=auth_token, options=options, http=http, refusals=refusals, s3=s3),
                timeout=_budget_s(options),
            )
    except TimeoutError:
        report.add("smoke test", "fail", f"gave up after {_budget_s(options):.0f} s", "check: the lines above")
    finally:
        report.duration_s = time.monotonic() - started
    return report


async def _run(
    report: Report,
    *,
    target: Target,
    token: str,
    options: Options,
    http: httpx.AsyncClient,
    refusals: RefusalLog | None,
    s3: Callable[[], Any] | None,
) -> None:
    probe = Call(transcript=_Quiet(), auth_token=token)
    voice = await post_voice(http, probe, target.voice_url, signed_with=token)
    relay = _check_signed_voice(report, target, voice, probe.identity.call_sid)
    _check_unsigned_voice(report, await post_voice(http, probe, target.voice_url, signed_with=None))
    upgraded = False
    if relay is None:
        report.add("signed upgrade", "skip", "not run: it needs the relay URL from a signed /voice")
    else:
        upgraded = await _check_signed_upgrade(report, relay.url, token, options, refusals)
    await _check_unsigned_upgrade(report, relay.url if relay else target.relay_url)
    result: CallResult | None = None
    if relay is None or not upgraded:
        report.add("call", "skip", "not run: it needs a signed /voice and a signed upgrade that work")
    else:
        result = await _check_call(report, target, token, options, http)
    await _check_record(report, target, result, options, s3)


def _check_signed_voice(
    report: Report, target: Target, voice: _Voice, probe_call: str
) -> twiml.ConversationRelay | None:
    name = "signed /voice"
    url = target.voice_url
    if voice.status == 0:
        report.add(
            name,
            "fail",
            f"cannot reach {url}: {voice.error}",
            "check: is the stack deployed, and is cdk-outputs.json from this deployment?",
        )
        return None
    if voice.status == 403:
        report.add(
            name,
            "fail",
            f"refused with HTTP 403; signed over {url} with the call's form",
            "check: TWILIO_AUTH_TOKEN here is the account's primary auth token, and the value in "
            "TwilioAuthTokenSecretArn is the same (warm functions keep an old value until recycled: docs/deploy.md)",
            "check: make logs FN=webhook, line 'webhook request refused': checked_url is the URL the "
            "function expects signatures over",
        )
        return None
    if voice.status != 200:
        report.add(
            name,
            "fail",
            f"answered HTTP {voice.status}",
            "check: make logs FN=webhook; a 500 with 'still holds its placeholder' means "
            "TwilioAuthTokenSecretArn has no value yet (put-secret-value, docs/deploy.md)",
        )
        return None
    connect_verb = voice.connect
    if voice.error is not None or connect_verb is None:
        found = voice.error or f"TwiML without <Connect>: {twiml.describe(voice.verbs)}"
        report.add(name, "fail", found, "check: make logs FN=webhook")
        return None
    relay, action = connect_verb.relay, connect_verb.action or ""
    problems: list[str] = []
    if action != f"{target.webhook_base_url}/action":
        problems.append(
            f"the <Connect action> is {action or 'missing'}, not {target.webhook_base_url}/action "
            "(Twilio posts the session's end there)"
        )
    socket_url = urlsplit(relay.url)
    if socket_url._replace(query="").geturl() != target.relay_url:
        problems.append(
            f"the TwiML's relay URL is {twiml.redacted(relay.url)}, the stack's RelayUrl is {target.relay_url}: "
            "is cdk-outputs.json from this deployment?"
        )
    named = dict(parse_qsl(socket_url.query))
    if named.get("callSid") != probe_call or not named.get("callToken"):
        problems.append(
            f"the TwiML's relay URL does not name this call and its token ({twiml.redacted(relay.url)}): "
            "is the webhook function from this version?"
        )
    if problems:
        report.add(name, "fail", twiml.describe(voice.verbs), *(f"check: {p}" for p in problems))
        return None
    greeting = "with a welcome greeting" if relay.welcome_greeting else "WITHOUT a welcome greeting"
    report.add(name, "pass", f"TwiML {twiml.describe([connect_verb])}, {greeting}")
    return relay


def _check_unsigned_voice(report: Report, voice: _Voice) -> None:
    name = "unsigned /voice"
    if voice.status == 403:
        report.add(name, "pass", "refused with HTTP 403")
    elif voice.status == 200:
        report.add(
            name,
            "fail",
            "answered 200: anyone can place calls through this webhook",
            "check: the webhook function's environment must not set TWILIO_SIGNATURE_VALIDATION (the stack never does)",
        )
    else:
        report.add(name, "fail", f"expected HTTP 403, got {voice.status or voice.error}")


async def _check_signed_upgrade(
    report: Report, url: str, token: str, options: Options, refusals: RefusalLog | None
) -> bool:
    name = "signed upgrade"
    signed_over = options.sign_upgrade_over or url
    since_ms = int(time.time() * 1000) - 5_000
    began = time.monotonic()
    status, error = await try_upgrade(url, sign(token, signed_over))
    shown = twiml.redacted(url)
    if status == 101:
        report.add(name, "pass", f"{shown} opened in {(time.monotonic() - began) * 1000:.0f} ms")
        return True
    over = "the TwiML's url" if signed_over == url else f"NOT the TwiML's url {shown}"
    hints = [f"signed over: {twiml.redacted(signed_over)} ({over})"]
    if status in (401, 403):
        hints += _refusal_hints(refusals, since_ms)
        hints.append(
            "check: TWILIO_AUTH_TOKEN matches TwilioAuthTokenSecretArn; the URL $connect checks is its "
            "RELAY_PUBLIC_URL, which must be exactly the URL Twilio dials (scheme, host, stage, no trailing /)"
        )
    elif status >= 500:
        hints.append("check: make logs FN=connect; 'still holds its placeholder' means the Twilio secret has no value")
    else:
        hints.append("check: is the relay deployed, and does its domain resolve (custom domains: the CNAME)?")
    report.add(name, "fail", f"{shown} refused: {error}", *hints)
    return False


def _refusal_hints(refusals: RefusalLog | None, since_ms: int) -> list[str]:
    where = "make logs FN=connect, line 'websocket upgrade refused' (checked_url, header_names)"
    if refusals is None:
        return [f"$connect's view: {where}"]
    line = refusals.latest(since_ms)
    if line is None:
        error = getattr(refusals, "error", None)
        return [f"$connect's view: {error or 'no refusal line found yet'}; see {where}"]
    names = [str(n) for n in line.get("header_names") or []]
    signature = "present" if "x-twilio-signature" in names else "MISSING: it did not reach $connect"
    return [
        f"$connect checked against: {line.get('checked_url')} (reason: {line.get('reason')})",
        f"$connect saw the headers: {', '.join(names) or 'none'} (X-Twilio-Signature {signature})",
    ]


async def _check_unsigned_upgrade(report: Report, url: str) -> None:
    name = "unsigned upgrade"
    status, error = await try_upgrade(url, None)
    if status in (401, 403):
        report.add(name, "pass", f"refused with HTTP {status}")
    elif status == 101:
        report.add(
            name,
            "fail",
            f"{twiml.redacted(url)} opened without a signature: anyone can talk to the agent",
            "check: the connect function's environment must not set TWILIO_SIGNATURE_VALIDATION",
        )
    else:
        report.add(name, "fail", f"expected a refusal with HTTP 401 or 403, got {error}")


async def _check_call(
    report: Report, target: Target, token: str, options: Options, http: httpx.AsyncClient
) -> CallResult:
    quiet = _Quiet()
    call = Call(transcript=quiet, auth_token=token, identity=CallerIdentity(), http=http)
    report.call_sid = call.identity.call_sid
    script = SmokeScript(options, _apology())
    result = await call.dial(target.voice_url, script)
    report.first_text_ms = [(label, reply.first_text_ms) for label, reply in script.turns]
    problems = list(script.problems)
    if result.protocol_errors:
        problems.append(
            f"the agent sent {len(result.protocol_errors)} frame(s) ConversationRelay rejects (Twilio error 64107), "
            "such as API Gateway's error frame for a handler that raised or timed out"
        )
    actions = [status for path, status in result.webhook_statuses if path.endswith("/action")]
    if result.outcome != "hung_up":
        problems.append(f"the call ended as {result.outcome}: {result.detail}")
    elif actions != [200]:
        problems.append(f"/action answered {actions or 'nothing'} to the hang-up (expected one 200)")
    name = f"call {call.identity.call_sid}"
    if problems:
        hints = [f"check: {p}" for p in problems]
        hints.append(
            "check: make logs FN=message; OpenAiApiKeySecretArn holds your key (not REPLACE_ME); the model name; "
            "the message function may post to the connection (execute-api:ManageConnections)"
        )
        hints += [f"call: {note}" for note in quiet.notes[-6:]]
        report.add(name, "fail", _call_summary(script, actions), *hints)
    else:
        report.add(name, "pass", _call_summary(script, actions))
    return result


def _call_summary(script: SmokeScript, actions: list[int]) -> str:
    answered = sum(1 for _, reply in script.turns if reply.text)
    parts = [
        "greeting" if script.greeting else "no greeting",
        f"{answered} of 3 replies",
        "barge-in" if script.barged_in else "no barge-in",
        f"hang-up, /action {actions[0] if actions else 'not called'}",
    ]
    return ", ".join(parts)


async def _check_record(
    report: Report, target: Target, result: CallResult | None, options: Options, s3: Callable[[], Any] | None
) -> None:
    name = "call record"
    if target.records_bucket is None:
        report.add(name, "skip", f"not deployed by this stack version (no {outputs.CALL_RECORDS_BUCKET} output)")
        return
    if result is None or report.call_sid is None:
        report.add(name, "skip", "not run: there was no call")
        return
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = target.records_bucket
    try:
        client = (s3 or _default_s3)()
        key = await asyncio.to_thread(
            find_call_record,
            client,
            bucket,
            report.call_sid,
            timeout_s=options.record_timeout_s,
            prefixes=record_prefixes(),
        )
    except (BotoCoreError, ClientError) as exc:
        report.add(
            name,
            "fail",
            f"cannot list s3://{bucket} ({aws_error(exc)})",
            "check: run with the AWS credentials you deploy with (it lists the bucket, read-only)",
        )
        return
    if key is None:
        report.add(
            name,
            "fail",
            f"no object for {report.call_sid} in s3://{bucket} within {options.record_timeout_s:g} s",
            "check: make logs FN=webhook (it asks for the record when the call ends), then make logs FN=records; "
            "a request that failed every attempt waits in CallRecordsDeadLetterQueueUrl",
        )
    else:
        report.add(name, "pass", f"s3://{bucket}/{key}")


def _default_s3() -> Any:
    import boto3

    return boto3.client("s3")


def _default_refusals(target: Target) -> RefusalLog | None:
    if target.connect_log_group is None:
        return None

    def logs() -> Any:
        import boto3

        return boto3.client("logs")

    return CloudWatchRefusals(logs, target.connect_log_group)


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    refusals: RefusalLog | None = None,
    s3: Callable[[], Any] | None = None,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stack_arguments(parser)
    parser.add_argument("--reply-timeout", type=float, default=Options.reply_timeout_s, metavar="SECONDS")
    parser.add_argument(
        "--greeting-seconds", type=float, default=Options.greeting_s, help="how long the caller hears the greeting"
    )
    parser.add_argument("--record-timeout", type=float, default=Options.record_timeout_s, metavar="SECONDS")
    parser.add_argument(
        "--sign-upgrade-over",
        metavar="URL",
        help="sign the WebSocket upgrade over URL instead of the TwiML's (to see what $connect makes of it)",
    )
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    try:
        target = Target.from_outputs(*load_stack(args.stack_outputs, args.stack))
        token = env.get(AUTH_TOKEN_VARIABLE, "").strip()
        if not token:
            raise CliError(
                f"set {AUTH_TOKEN_VARIABLE} to the primary auth token of the Twilio account whose number you "
                "wired (the value you put in TwilioAuthTokenSecretArn); it is read here and never printed"
            )
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = Options(
        reply_timeout_s=args.reply_timeout,
        greeting_s=args.greeting_seconds,
        record_timeout_s=args.record_timeout,
        sign_upgrade_over=args.sign_upgrade_over,
    )
    report = asyncio.run(run_smoke(target, token, options, refusals=refusals or _default_refusals(target), s3=s3))
    for line in report.lines():
        print(line)
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
