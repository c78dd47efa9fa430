"""Scripted calls: a TOML file of caller steps and the expectations the call must meet.

A scenario file (``local/scenarios/*.toml``; stdlib ``tomllib``, so a fork adds one without a
new dependency)::

    name = "hours"
    description = "Ask for the opening hours, then hang up."

    [caller]            # optional
    from = "+15555550123"
    to = "+15555550199"
    think_s = 0.3       # pause before each caller input
    greeting_s = 0.0    # time the caller listens to each session's greeting before its first step

    [[step]]
    say = "When are you open on Sunday?"
    expect = ["Sunday"]             # substrings of the agent's reply (case-insensitive)

    [[step]]
    hangup = true

    [expect]            # optional; checked when the call is over
    outcome = "hung_up" # transferred | hung_up | ended | rejected | connect_failed | webhook_failed
    dial = "+15555550100"
    reconnects = 0
    min_turns = 1
    greeting = "Ada"    # a substring of the greeting: which agent answered

Steps (one action each): ``say`` (with ``partial = true`` for cumulative partial prompts first, and
``barge_in_after_chars = N`` to interrupt the reply once N characters arrived), ``dtmf``, ``drop``
(the socket drops and Twilio cannot reopen it: ``/action`` gets ``failed``/64105), ``blip`` (the
socket drops and Twilio's application reconnect reopens it), ``hangup``, ``wait`` (seconds) and ``send``
(a raw frame, e.g. malformed JSON). Checks on a step: ``expect``, ``expect_not``, ``expect_end``
(the reply ends the session), ``expect_silence`` (``send``: no reply and no error within
``silence_s``), ``timeout_s``. Whatever the file says, a frame that is not a valid
ConversationRelay message fails the call, and so does a step left over when the call ends.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from local.caller import twiml
from local.caller.phone import DIRECT_RELAY_ATTRIBUTES, Call, CallerIdentity, CallResult, RelaySession, Reply
from local.caller.transcript import PrintedTranscript, latency_table

SCENARIO_DIR: Final = Path(__file__).resolve().parent.parent / "scenarios"
StepKind = Literal["say", "dtmf", "drop", "blip", "hangup", "wait", "send"]
_ACTIONS: Final = ("say", "dtmf", "drop", "blip", "hangup", "wait", "send")
_STEP_KEYS: Final = frozenset(
    {
        *_ACTIONS,
        "partial",
        "barge_in_after_chars",
        "expect",
        "expect_not",
        "expect_end",
        "expect_silence",
        "silence_s",
        "timeout_s",
    }
)
_EXPECT_KEYS: Final = frozenset({"outcome", "dial", "reconnects", "min_turns", "greeting"})
_CALLER_KEYS: Final = frozenset({"from", "to", "think_s", "greeting_s"})
_OUTCOMES: Final = ("transferred", "hung_up", "ended", "rejected", "connect_failed", "webhook_failed")


class ScenarioError(ValueError):
    """A scenario file that cannot be run (every problem listed)."""


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    number: int
    text: str = ""
    digit: str = ""
    seconds: float = 0.0
    partial: bool = False
    barge_in_after_chars: int | None = None
    expect: tuple[str, ...] = ()
    expect_not: tuple[str, ...] = ()
    expect_end: bool = False
    expect_silence: bool = False
    silence_s: float = 1.0
    timeout_s: float = 30.0

    def describe(self) -> str:
        detail = {"say": repr(self.text), "dtmf": self.digit, "wait": f"{self.seconds:g}s", "send": repr(self.text)}
        return f"step {self.number} ({self.kind} {detail.get(self.kind, '')})".replace(" )", ")")


@dataclass(frozen=True, slots=True)
class Expectations:
    outcome: str | None = None
    dial: str | None = None
    reconnects: int | None = None
    min_turns: int | None = None
    greeting: str | None = None  # a substring of the first session's welcome greeting (which agent answered)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    description: str = ""
    from_number: str = "+15555550123"
    to_number: str = "+15555550199"
    think_s: float = 0.3
    greeting_s: float = 0.0
    expect: Expectations = field(default_factory=Expectations)
    path: Path | None = None


def find(name_or_path: str) -> Path:
    """A scenario by name (``demo`` -> ``local/scenarios/demo.toml``) or by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        return path
    candidate = SCENARIO_DIR / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
    raise ScenarioError(f"no scenario {name_or_path!r} (known: {known})")


def load(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return parse(data, path=path)


def parse(data: Mapping[str, Any], *, path: Path | None = None) -> Scenario:
    problems: list[str] = []
    unknown = sorted(set(data) - {"name", "description", "caller", "step", "expect"})
    if unknown:
        problems.append(f"unknown top-level keys: {', '.join(unknown)}")
    caller = data.get("caller") or {}
    problems += [f"[caller] unknown key {k!r}" for k in sorted(set(caller) - _CALLER_KEYS)]
    for key in ("think_s", "greeting_s"):
        value = caller.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 30:
            problems.append(f"[caller] {key} must be a number of seconds in 0..30")
    raw_steps = data.get("step") or []
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("no [[step]] entries")
        raw_steps = []
    steps = []
    for n, raw in enumerate(raw_steps, 1):
        step, errors = _step(n, raw)
        problems += errors
        if step is not None:
            steps.append(step)
    expect_raw = data.get("expect") or {}
    problems += [f"[expect] unknown key {k!r}" for k in sorted(set(expect_raw) - _EXPECT_KEYS)]
    outcome = expect_raw.get("outcome")
    if outcome is not None and outcome not in _OUTCOMES:
        problems.append(f"[expect] outcome must be one of {', '.join(_OUTCOMES)}")
    if problems:
        where = f"{path}: " if path else ""
        raise ScenarioError(where + "invalid scenario:\n- " + "\n- ".join(problems))
    return Scenario(
        name=str(data.get("name") or (path.stem if path else "scenario")),
        description=str(data.get("description", "")),
        steps=tuple(steps),
        from_number=str(caller.get("from", "+15555550123")),
        to_number=str(caller.get("to", "+15555550199")),
        think_s=float(caller.get("think_s", 0.3)),
        greeting_s=float(caller.get("greeting_s", 0.0)),
        expect=Expectations(
            outcome=outcome,
            dial=expect_raw.get("dial"),
            reconnects=expect_raw.get("reconnects"),
            min_turns=expect_raw.get("min_turns"),
            greeting=expect_raw.get("greeting"),
        ),
        path=path,
    )


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _action_value(kind: StepKind, value: Any) -> tuple[str, str, float, str | None]:
    """A step's text, key and seconds from its action's value, and what is wrong with it."""
    if kind in ("say", "send"):
        ok = isinstance(value, str) and (kind != "say" or bool(value.strip()))
        return str(value), "", 0.0, None if ok else f"{kind} must be a non-empty string"
    if kind == "dtmf":
        digit = str(value)
        ok = len(digit) == 1 and digit in "0123456789*#"
        return "", digit, 0.0, None if ok else "dtmf must be one key: 0-9, * or #"
    if kind == "wait":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 60:
            return "", "", 0.0, "wait must be 0..60 seconds"
        return "", "", float(value), None
    return "", "", 0.0, None if value is True else f"write {kind} = true"


def _step(n: int, raw: Any) -> tuple[Step | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"step {n}: not a table"]
    problems = [f"step {n}: unknown key {k!r}" for k in sorted(set(raw) - _STEP_KEYS)]
    actions = [a for a in _ACTIONS if a in raw]
    if len(actions) != 1:
        problems.append(f"step {n}: needs exactly one of {', '.join(_ACTIONS)} (found {len(actions)})")
        return None, problems
    kind: StepKind = actions[0]  # type: ignore[assignment]
    text, digit, seconds, problem = _action_value(kind, raw[kind])
    if problem:
        problems.append(f"step {n}: {problem}")
    barge = raw.get("barge_in_after_chars")
    if barge is not None and (kind != "say" or not isinstance(barge, int) or barge < 1):
        problems.append(f"step {n}: barge_in_after_chars is a positive number on a say step")
    if raw.get("expect_silence") and kind != "send":
        problems.append(f"step {n}: expect_silence applies to send steps")
    step = Step(
        kind=kind,
        number=n,
        text=text,
        digit=digit,
        seconds=seconds,
        partial=bool(raw.get("partial", False)),
        barge_in_after_chars=barge,
        expect=_strings(raw.get("expect")),
        expect_not=_strings(raw.get("expect_not")),
        expect_end=bool(raw.get("expect_end", False)),
        expect_silence=bool(raw.get("expect_silence", False)),
        silence_s=float(raw.get("silence_s", 1.0)),
        timeout_s=float(raw.get("timeout_s", 30.0)),
    )
    return step, problems


class ScriptDriver:
    """Plays a scenario's steps across the call's sessions (a drop does not restart the script)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.failures: list[str] = []
        self.next_step = 0

    @property
    def remaining(self) -> tuple[Step, ...]:
        return self.scenario.steps[self.next_step :]

    async def on_session(self, session: RelaySession) -> None:
        steps = self.scenario.steps
        if self.scenario.greeting_s > 0 and session.relay.welcome_greeting:
            # Twilio speaks the greeting before the caller can answer; setup warms the agent meanwhile.
            await asyncio.sleep(self.scenario.greeting_s)
        while not session.ended.is_set() and self.next_step < len(steps):
            step = steps[self.next_step]
            self.next_step += 1
            if step.kind in ("say", "dtmf"):
                await asyncio.sleep(self.scenario.think_s)
            await self._run(step, session)

    async def _run(self, step: Step, session: RelaySession) -> None:
        match step.kind:
            case "say":
                reply = await session.prompt(step.text, partial=step.partial)
                await self._listen(step, session, reply)
            case "dtmf":
                key_reply = await session.dtmf(step.digit)
                if key_reply is None:
                    self._fail(step, "the key press was not delivered (dtmfDetection is off in the TwiML)")
                else:
                    await self._listen(step, session, key_reply)
            case "drop":
                await session.drop()
            case "blip":  # the socket drops and Twilio reopens it by itself (application reconnect)
                await session.drop(app_reachable=True)
                if not await session.wait_reconnected(step.timeout_s):
                    self._fail(step, "Twilio's application reconnect did not reopen the socket")
            case "hangup":
                await session.hangup()
            case "wait":
                await asyncio.sleep(step.seconds)
            case "send":
                await self._send(step, session)

    async def _listen(self, step: Step, session: RelaySession, reply: Reply) -> None:
        if step.barge_in_after_chars is not None:
            await reply.until_heard(step.barge_in_after_chars, step.timeout_s)
            if reply.done.is_set():
                self._fail(step, "the reply was over before the caller could barge in")
            elif len(reply.text) < step.barge_in_after_chars:
                self._fail(step, f"no {step.barge_in_after_chars} characters of reply within {step.timeout_s:g}s")
            else:
                await session.interrupt()
            self._check_text(step, reply)
            return
        if not await session.wait(reply, step.timeout_s) and not session.ended.is_set():
            self._fail(step, f"no complete reply within {step.timeout_s:g}s (got {reply.text!r})")
        if step.expect_end and not reply.ended:
            # The agent says its last line (with ``last``), lets it play, then sends ``end``.
            await session.wait_ended(step.timeout_s)
        if reply.ended and not step.expect_end:
            self._fail(step, "the agent ended the session here")
        if step.expect_end and not reply.ended:
            self._fail(step, "expected the agent to end the session")
        self._check_text(step, reply)

    async def _send(self, step: Step, session: RelaySession) -> None:
        errors, replies = len(session.protocol_errors), len(session.replies)
        await session.send_raw(step.text)
        if step.expect_silence:
            await asyncio.sleep(step.silence_s)
            if len(session.protocol_errors) > errors:
                self._fail(step, "the app answered with an invalid frame")
            if len(session.replies) > replies:
                self._fail(step, "the app answered a frame it should have ignored")

    def _check_text(self, step: Step, reply: Reply) -> None:
        said = reply.text.lower()
        for wanted in step.expect:
            if wanted.lower() not in said:
                self._fail(step, f"expected {wanted!r} in the reply {reply.text!r}")
        for unwanted in step.expect_not:
            if unwanted.lower() in said:
                self._fail(step, f"did not expect {unwanted!r} in the reply {reply.text!r}")

    def _fail(self, step: Step, message: str) -> None:
        self.failures.append(f"{step.describe()}: {message}")


@dataclass
class ScenarioResult:
    scenario: Scenario
    call: CallResult
    failures: list[str]
    transcript: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def check_call(scenario: Scenario, driver: ScriptDriver, result: CallResult) -> list[str]:
    failures = list(driver.failures)
    e = scenario.expect
    if result.protocol_errors:
        failures.append(f"{len(result.protocol_errors)} invalid frame(s) from the app (Twilio error 64107)")
    if driver.remaining:
        failures.append(f"the call ended ({result.detail}) with {len(driver.remaining)} step(s) left")
    if e.outcome is not None and result.outcome != e.outcome:
        failures.append(f"expected outcome {e.outcome}, got {result.outcome} ({result.detail})")
    elif e.outcome is None and result.outcome in ("error", "webhook_failed", "connect_failed"):
        failures.append(f"the call failed: {result.outcome} ({result.detail})")
    if e.dial is not None and result.dial_target != e.dial:
        failures.append(f"expected <Dial> {e.dial}, got {result.dial_target}")
    if e.reconnects is not None and result.reconnects != e.reconnects:
        failures.append(f"expected {e.reconnects} reconnect(s), got {result.reconnects}")
    if e.min_turns is not None and len(result.replies()) < e.min_turns:
        failures.append(f"expected at least {e.min_turns} turns, got {len(result.replies())}")
    heard = result.sessions[0].relay.welcome_greeting or "" if result.sessions else ""
    if e.greeting is not None and e.greeting.lower() not in heard.lower():
        failures.append(f"expected a greeting with {e.greeting!r}, got {heard!r}")
    return failures


async def run(
    scenario: Scenario,
    *,
    voice_url: str | None = None,
    relay_url: str | None = None,
    auth_token: str | None,
    out: Callable[[str], None] = print,
) -> ScenarioResult:
    """Run one scenario through the webhook (``voice_url``) or straight to the socket (``relay_url``)."""
    transcript = PrintedTranscript(out=out)
    identity = CallerIdentity(from_number=scenario.from_number, to_number=scenario.to_number)
    call = Call(transcript=transcript, auth_token=auth_token, identity=identity)
    driver = ScriptDriver(scenario)
    if voice_url is not None:
        result = await call.dial(voice_url, driver)
    elif relay_url is not None:
        relay = twiml.ConversationRelay(url=relay_url, attributes=DIRECT_RELAY_ATTRIBUTES)
        result = await call.direct(relay, driver)
    else:
        raise ValueError("voice_url or relay_url is required")
    failures = check_call(scenario, driver, result)
    transcript.note(f"call over: {result.outcome} ({result.detail}) in {result.duration_s:.1f} s")
    return ScenarioResult(scenario=scenario, call=result, failures=failures, transcript=transcript.lines)


def summary(result: ScenarioResult) -> list[str]:
    lines = ["", f"Latency per turn ({result.scenario.name}):", *("  " + line for line in latency_table(result.call))]
    if result.passed:
        lines.append(f"PASSED: {result.scenario.name}")
    else:
        lines.append(f"FAILED: {result.scenario.name}")
        lines += [f"  - {f}" for f in result.failures]
    return lines
