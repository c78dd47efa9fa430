"""Load through the local stack: many calls at once, several turns each, the caller barging in at
random moments. Nothing may be lost or cross-wired, and every reply must end correctly.

Full size (``make load``): 100 concurrent calls of 10 turns. ``make test``: 20 calls of 5 turns.
``LOAD_CALLS`` / ``LOAD_TURNS`` override either. The figures are printed and written to
``.local/reliability/``.

What is checked, per call:

- the caller: every prompt got speech; every reply ended with exactly one ``last: true``, or was
  interrupted by the caller and then sent no ``last`` (unless the reply had already finished when
  the app saw the interrupt: then its ``last`` was already on the wire, and the app says so too);
  no frame outside a reply, no protocol error, no API Gateway error frame;
- the app's own account (its JSON logs): one turn per prompt, each ``completed`` or
  ``interrupted``, matching what the caller saw;
- DynamoDB: the call's caller messages are exactly its prompts, in order, and one interruption
  marker per barge-in;
- the model's requests: each holds one call's words only, its caller messages an unbroken, ordered
  run of that call's prompts ending with the current one, and after a barge-in what the caller
  heard (not what was generated).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from local.caller.phone import CallerIdentity, RelaySession, Reply
from local.demo_model import ABOUT, ADDRESS, HOURS, order_status
from local.stack import LocalStack
from tests.e2e.conftest import run, turn_items
from tests.reliability.conftest import AUTH_TOKEN, FULL, ErrorFrames
from tests.support.local_calls import PlacedCall, RoutingBrain, captured_logs, messages, place_call, say

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CALLS = int(os.environ.get("LOAD_CALLS") or (100 if FULL else 20))
TURNS = int(os.environ.get("LOAD_TURNS") or (10 if FULL else 5))
BARGE_IN_RATE = 0.35
# How long the caller listens per word of a reply before answering. A voice speaks about 2.5 words
# a second (0.4 s a word): full size paces callers like people, who hear a reply out before they
# speak again. The reduced run listens faster, to stay short. LOAD_LISTEN_S_PER_WORD=0 makes every
# caller answer the instant a reply's last frame arrives (ten times a real caller's rate).
LISTEN_S_PER_WORD = float(os.environ.get("LOAD_LISTEN_S_PER_WORD") or (0.4 if FULL else 0.02))
RAMP_S = 10.0 if FULL else 2.0  # calls arrive over this many seconds
REPORT_DIR = Path(".local/reliability")

pytestmark = pytest.mark.timeout(900 if FULL else 300)

ORDER = {"order_id": "1001", "item": "cordless drill", "status": "shipped", "expected": "Thursday"}
# (what the caller asks, what the demo model answers): short, long, and a tool round.
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("when are you open?", HOURS),
    ("where is the store?", ADDRESS),
    ("tell me about the store.", ABOUT),
    (
        "can you check order 1001?",
        "Let me look that up. Thanks for waiting. " + order_status(ORDER)[:1].upper() + order_status(ORDER)[1:],
    ),
    ("thank you.", "You're welcome! Is there anything else I can help with?"),
)
TAG = re.compile(r"^Caller (\d+), turn (\d+): ")


@dataclass
class Turn:
    text: str
    expected: str
    reply: Reply | None = None
    barge_at: int | None = None  # characters heard before barging in (None: listen to the end)


@dataclass
class Script:
    n: int
    turns: list[Turn] = field(default_factory=list)
    placed: PlacedCall | None = None


def script_for(n: int, rng: random.Random) -> Script:
    script = Script(n)
    for t in range(TURNS):
        question, answer = QUESTIONS[rng.randrange(len(QUESTIONS))]
        barge = rng.randint(1, min(160, len(answer) - 1)) if rng.random() < BARGE_IN_RATE else None
        script.turns.append(Turn(text=f"Caller {n}, turn {t}: {question}", expected=answer, barge_at=barge))
    return script


async def quiet(reply: Reply, for_s: float = 0.3, limit_s: float = 5.0) -> None:
    """After a barge-in: until no late frame of the interrupted reply arrived for ``for_s``."""
    deadline = time.monotonic() + limit_s
    seen, since = reply.late_frames, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < for_s:
        await asyncio.sleep(0.02)
        if reply.late_frames != seen:
            seen, since = reply.late_frames, time.monotonic()


async def listen(reply: Reply) -> None:
    """Until the reply has been spoken (as far as the caller's pace goes)."""
    if reply.first_text_at is not None:
        spoken_at = reply.first_text_at + len(reply.text.split()) * LISTEN_S_PER_WORD
        await asyncio.sleep(max(0.0, spoken_at - time.monotonic()))


def program(script: Script, rng: random.Random) -> Any:
    async def converse(session: RelaySession) -> None:
        await asyncio.sleep(rng.uniform(0.0, RAMP_S))  # calls arrive over a few seconds, not in one instant
        for turn in script.turns:
            await asyncio.sleep(rng.uniform(0.05, 0.4))  # the caller thinks
            reply = turn.reply = await session.prompt(turn.text)
            if turn.barge_at is None:
                await session.wait(reply, 60)
                await listen(reply)
                continue
            await reply.until_heard(turn.barge_at, 60)
            if not reply.done.is_set():
                await session.interrupt()
                # The caller is still talking: Twilio sends their prompt when they stop.
                await asyncio.sleep(rng.uniform(0.8, 2.0))
                await quiet(reply)
            else:
                await listen(reply)

    return converse


@dataclass
class Figures:
    calls: int
    turns: int
    barge_ins: int = 0
    late_lasts: int = 0
    late_frames: int = 0
    failures: list[str] = field(default_factory=list)
    first_text_ms: list[float] = field(default_factory=list)
    server_first_phrase_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    peak_open_calls: int = 0

    def fail(self, n: int, message: str) -> None:
        self.failures.append(f"call {n}: {message}")

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: int) -> float | None:
            return round(statistics.quantiles(values, n=100)[q - 1], 1) if len(values) >= 2 else None

        return {
            "calls": self.calls,
            "turns": self.turns,
            "failures": len(self.failures),
            "barge_ins": self.barge_ins,
            "late_frames_after_barge_in": self.late_frames,
            "replies_finished_before_the_interrupt_arrived": self.late_lasts,
            "first_text_ms_p50": pct(self.first_text_ms, 50),
            "first_text_ms_p95": pct(self.first_text_ms, 95),
            "first_text_ms_max": round(max(self.first_text_ms), 1) if self.first_text_ms else None,
            "server_first_phrase_ms_p50": pct(self.server_first_phrase_ms, 50),
            "server_first_phrase_ms_p95": pct(self.server_first_phrase_ms, 95),
            "peak_calls_connected_at_once": self.peak_open_calls,
            "wall_s": round(self.wall_s, 1),
            "turns_per_s": round(self.turns / self.wall_s, 1) if self.wall_s else None,
            "caller_listens_s_per_word": LISTEN_S_PER_WORD,
            "cpu_cores_busy": self.cpu,
        }


def check_caller(script: Script, figures: Figures) -> None:
    n, placed = script.n, script.placed
    assert placed is not None
    result = placed.result
    if result.protocol_errors:
        figures.fail(n, f"protocol errors {[e.reason for e in result.protocol_errors]}")
    if result.outcome != "hung_up" or len(result.sessions) != 1:
        figures.fail(n, f"outcome {result.outcome} ({result.detail}) over {len(result.sessions)} session(s)")
    session = result.sessions[0] if result.sessions else None
    if session is not None and any(r.kind == "unsolicited" for r in session.replies):
        figures.fail(n, "frames outside any reply")
    for t, turn in enumerate(script.turns):
        reply = turn.reply
        if reply is None or reply.first_text_at is None:
            figures.fail(n, f"turn {t}: no speech at all (a lost turn)")
            continue
        figures.first_text_ms.append(reply.first_text_ms or 0.0)
        lasts = sum(1 for f in reply.frames if f.type == "text" and f.last)
        if reply.interrupted:
            figures.barge_ins += 1
            figures.late_frames += reply.late_frames
            figures.late_lasts += reply.late_last
            if lasts or not turn.expected.startswith(reply.text):
                figures.fail(n, f"turn {t}: interrupted reply {reply.text!r} with {lasts} last frame(s)")
        elif not reply.completed or lasts != 1 or reply.text != turn.expected:
            figures.fail(n, f"turn {t}: reply {reply.text!r} completed={reply.completed} lasts={lasts}")


def check_server(script: Script, turns: list[dict[str, Any]], figures: Figures) -> None:
    """The app's own account of the call's turns must match what the caller saw."""
    n = script.n
    statuses = [r["status"] for r in turns]
    if len(statuses) != TURNS or set(statuses) - {"completed", "interrupted"}:
        figures.fail(n, f"the app finished {len(statuses)} turns: {statuses}")
        return
    interrupted = [t.reply for t in script.turns if t.reply is not None and t.reply.interrupted]
    heard_to_the_end = sum(1 for r in interrupted if r.late_last)
    if statuses.count("interrupted") != len(interrupted) - heard_to_the_end:
        figures.fail(n, f"the app stopped {statuses.count('interrupted')} replies, the caller cut {len(interrupted)}")
    figures.server_first_phrase_ms += [r["time_to_first_phrase_ms"] for r in turns if r.get("time_to_first_phrase_ms")]


def check_history(script: Script, items: list[dict[str, Any]], figures: Figures) -> None:
    n = script.n
    users = [i["text"]["S"] for i in sorted(items, key=lambda i: i["sk"]["S"]) if i["role"]["S"] == "user"]
    if users != [t.text for t in script.turns]:
        figures.fail(n, f"DynamoDB holds the caller's messages {users}")
    markers = [i for i in items if i["role"]["S"] == "interruption"]
    if len(markers) != sum(1 for t in script.turns if t.reply is not None and t.reply.interrupted):
        figures.fail(n, f"{len(markers)} interruption markers for the caller's barge-ins")


def check_requests(scripts: dict[int, Script], requests: list[dict[str, Any]], figures: Figures) -> None:
    prompts = {n: [t.text for t in s.turns] for n, s in scripts.items()}
    for request in requests:
        users = messages(request, "user")
        tags = [TAG.match(u) for u in users]
        if not tags or not all(tags):
            continue  # not a load-test request
        callers = {int(m.group(1)) for m in tags if m}
        if len(callers) != 1:
            figures.fail(min(callers), f"a model request mixes calls {sorted(callers)}")
            continue
        n = callers.pop()
        indices = [int(m.group(2)) for m in tags if m]
        current = indices[-1]
        if (
            indices != list(range(current - len(indices) + 1, current + 1))
            or users != prompts[n][indices[0] : current + 1]
        ):
            figures.fail(n, f"turn {current}: the model saw the caller's turns {indices}")
            continue
        # After a barge-in, the history holds what the caller heard, as the agent's message.
        previous = scripts[n].turns[current - 1] if current else None
        if previous is not None and previous.reply is not None and previous.reply.interrupted:
            heard = (previous.reply.heard or "").strip()
            said = [m.strip() for m in messages(request, "assistant")]
            if heard and heard not in said:
                figures.fail(n, f"turn {current}: the model did not see what was heard ({heard!r})")


def java_cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_concurrent_calls_with_barge_ins_lose_and_cross_wire_nothing(
    stack: LocalStack,
    brain: RoutingBrain,
    dynamodb: DynamoDBClient,
    error_frames: ErrorFrames,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert stack.urls.voice is not None and stack.engine is not None
    voice = stack.urls.voice
    rng = random.Random(20261124)
    scripts = {n: script_for(n, rng) for n in range(CALLS)}

    async def warm_up(session: RelaySession) -> None:
        await say(session, "Hello there.")

    # One call first: the figures are for a warm stack. (The first turn of a fresh process pays the
    # cold start, importing the SDKs and opening connections, once here; in AWS, once per Lambda.)
    run(place_call(voice, AUTH_TOKEN, warm_up))
    requests_before = len(brain.requests)

    async def all_calls() -> None:
        async def one(script: Script) -> None:
            identity = CallerIdentity(from_number=f"+1555010{script.n:04d}")
            script.placed = await place_call(
                voice, AUTH_TOKEN, program(script, random.Random(script.n)), identity=identity
            )

        await asyncio.gather(*(one(s) for s in scripts.values()))

    figures = Figures(calls=CALLS, turns=CALLS * TURNS)
    sampling = threading.Event()

    def sample_open_calls() -> None:
        assert stack.gateway is not None
        while not sampling.wait(0.25):
            figures.peak_open_calls = max(figures.peak_open_calls, len(stack.gateway.open_connections()))

    sampler = threading.Thread(target=sample_open_calls, name="load-sampler", daemon=True)
    sampler.start()
    with captured_logs() as logs:
        cpu, java = time.process_time(), java_cpu_s(stack.engine.pid)
        started = time.monotonic()
        run(all_calls(), timeout_s=800 if FULL else 240)
        figures.wall_s = time.monotonic() - started
        figures.cpu = {
            "python (stack, model, callers; one GIL)": round((time.process_time() - cpu) / figures.wall_s, 2),
            "dynamodb local (java)": round((java_cpu_s(stack.engine.pid) - java) / figures.wall_s, 2),
        }
        sampling.set()
        time.sleep(0.5)  # the last disconnects
        records = logs.records()
    sampler.join()

    finished: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("message") == "turn finished":
            finished.setdefault(str(record.get("call_sid")), []).append(record)
    for script in scripts.values():
        check_caller(script, figures)
        assert script.placed is not None
        sid = script.placed.result.call_sid
        check_server(script, finished.get(sid, []), figures)
        check_history(script, turn_items(dynamodb, stack.options.table_name, sid), figures)
    check_requests(scripts, list(brain.requests)[requests_before:], figures)

    summary = figures.summary()
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    report = REPORT_DIR / f"load-{CALLS}x{TURNS}.json"
    report.write_text(json.dumps({**summary, "failure_details": figures.failures[:50]}, indent=2) + "\n")
    with capsys.disabled():
        sys.stdout.write(f"\nload through the local stack ({report}):\n{json.dumps(summary, indent=2)}\n")

    assert figures.failures == [], "\n".join(figures.failures[:20])
    assert error_frames.new == 0
    assert figures.barge_ins > 0  # the barge-ins did happen
