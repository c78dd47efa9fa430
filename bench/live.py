"""Figures 1, 2, 3 and 5: the project on the local stack and the baseline, side by side, in this
process, against one fake model.

- The project: ``LocalStack`` (the API Gateway stand-in calling the real handlers on its thread
  pool, DynamoDB Local, the management API reached by the real boto3 client), with Twilio
  signatures checked as in AWS.
- The baseline: ``baseline.BaselineServer`` on the same server stack.
- One ``OpenAICompatibleServer`` with the ``BenchBrain``, a set time to first token and interval.

Turns are interleaved: for every turn the order of the two servers is drawn at random, and each
turn runs alone (its reply finished, and for the project its Lambda returned, before the next), so
both see the same machine. DynamoDB requests and PostToConnection calls are counted per project
turn through botocore hooks on the handlers' own clients.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench import counters as c
from bench.baseline import BaselineServer
from bench.client import Partials, RelayClient, TurnTiming
from bench.counters import AwsCounters, InvocationTracker
from bench.llm import BenchBrain, prompt, reply_text, reply_tokens
from bench.stats import ms, summary
from local.caller.phone import SPEECH_WORDS_PER_S
from local.stack import LocalStack, StackOptions

Side = Literal["project", "baseline"]
PartialMode = Literal["off", "same", "differs"]
SIDES: tuple[Side, Side] = ("project", "baseline")


# The benchmark's calls leave their records here, out of `make calls`.
BENCH_RECORDS = Path(__file__).resolve().parents[1] / ".bench" / "calls"


@dataclass(frozen=True)
class LiveOptions:
    ttft_s: float = 0.2
    token_interval_s: float = 0.02
    turns: int = 50  # measured turns per side (figure 1)
    turns_per_call: int = 5
    short_tokens: int = 12  # reply length of figure 1's turns
    long_tokens: int = 150  # figure 2
    long_turns: int = 5
    calls: int = 50  # figure 5
    call_turns: int = 5
    greeting_s: float = 3.0  # the welcome greeting a caller listens to before speaking (figure 5)
    setup_pause_s: float = 0.3  # figure 1: from setup to the first prompt (warm process)
    think_s: float = 0.05
    miss_turns: int = 20  # figure 1b: turns whose connection this process has not seen
    # Figure 1p: turns whose words come as partial prompts first (the caller's words 150 ms apart,
    # the final prompt 500 ms after the last partial); a fifth as many whose final adds a word.
    partial_turns: int = 30
    # Figure 1c: turns with this round trip added to every DynamoDB and management API request
    # (an in-region network; 0 skips the figure).
    network_ms: float = 5.0
    network_turns: int = 20
    # Figure 5's callers: "listen" (hear the reply out, then pause 0.5-1.5 s, as on a phone; about
    # 10 turns a second for 50 calls) or "burst" (answer 0.2-0.6 s after ``last``: a stress test
    # that saturates the one-process stand-in and DynamoDB Local long before Lambda would notice).
    pace: Literal["listen", "burst"] = "listen"
    seed: int = 1
    dynamodb: Literal["auto", "dynamodb-local", "moto"] = "auto"


@dataclass
class TurnRecord:
    side: Side
    call: str
    turn: int
    timing: TurnTiming
    ok: bool
    purposes: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    posts: int = 0
    log_bytes: int = 0  # what the handlers logged during the turn


class Live:
    """The fake model, the project on the local stack and the baseline (a context manager)."""

    def __init__(self, options: LiveOptions) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.brain = BenchBrain()
        self.tracker = InvocationTracker()
        self.counters = AwsCounters()
        self.token = secrets.token_hex(16)
        self.stack = LocalStack(
            StackOptions(
                http_port=0,
                ws_port=0,
                llm="demo",
                # The figures are measured on the OpenAI path (the baseline speaks it too); the
                # Bedrock path is measured beside it (``use("bedrock")``), against the same model.
                provider="openai",
                serve=("openai", "bedrock"),
                think_aloud=False,
                brain=self.brain,
                twilio_auth_token=self.token,
                table_name="bench-sessions",
                dynamodb=options.dynamodb,
                model_ttft_s=options.ttft_s,
                model_token_interval_s=options.token_interval_s,
                on_invocation=self.tracker,
                records_dir=BENCH_RECORDS,  # the benchmark's calls stay out of `make calls`
            )
        )
        self.baseline: BaselineServer | None = None
        self._defaults = 0  # $default invocations started (setup and prompts)
        self._disconnects = 0

    def __enter__(self) -> Live:
        from bench.first_turn import warm_engine

        self.stack.start()
        warm_engine(self.stack.urls.dynamodb, self.stack.options.table_name)  # a fresh JVM: see first_turn
        from voice_agent.adapters import aws_clients
        from voice_agent.agent.config import AGENT

        self.counters.attach(aws_clients.dynamodb(), aws_clients.management_api(self.stack.urls.callback))
        assert self.stack.model is not None
        self.baseline = BaselineServer(
            llm_base_url=self.stack.model.base_url,
            model="bench",
            system_prompt=AGENT.system_prompt,
            greeting=AGENT.lines.welcome_greeting,
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.baseline is not None:
            self.baseline.stop()
        self.stack.stop()

    def use(self, provider: str) -> None:
        """Send the project's turns to this provider from now on (the handlers rebuild their model,
        keep their AWS clients and so the request counters)."""
        import os

        from voice_agent import env_names as names
        from voice_agent import wiring

        os.environ[names.LLM_PROVIDER] = provider
        wiring.reset_model()

    @property
    def engine(self) -> str:
        return self.stack.engine.description if self.stack.engine is not None else "?"

    # -- calls ----------------------------------------------------------------------------------

    async def open(self, side: Side) -> RelayClient:
        if side == "project":
            client = RelayClient.for_call(self.stack.urls.relay, self.token)
            self._defaults += 1
        else:
            assert self.baseline is not None
            client = RelayClient(self.baseline.url)
        await client.open()
        return client

    async def close(self, side: Side, client: RelayClient) -> None:
        await client.close()
        if side == "project":
            self._disconnects += 1
            await self.tracker.wait_for(self._disconnects, "$disconnect")

    async def turn(
        self, side: Side, client: RelayClient, call: str, turn: int, tokens: int, *, partials: PartialMode = "off"
    ) -> TurnRecord:
        said = prompt(call, turn, tokens)
        heard = _partials(said, partials)
        if side == "baseline":
            timing = await client.turn(said, partials=heard)
            return TurnRecord(side, call, turn, timing, _ok(timing, call, turn, tokens))
        await self.tracker.wait_for(self._defaults)  # the setup (or anything before) has returned
        self.counters.reset()
        logged = log_position()
        self._defaults += 1 + (len(heard.texts) if heard is not None else 0)
        timing = await client.turn(said, partials=heard)
        await self.tracker.wait_for(self._defaults)  # the turn's last writes follow its last frame
        purposes, operations, posts = self.counters.snapshot()
        ok = _ok(timing, call, turn, tokens)
        return TurnRecord(side, call, turn, timing, ok, purposes, operations, posts, log_position() - logged)

    async def per_call(self) -> dict[str, Any]:
        """DynamoDB requests and log bytes of a call's setup and of its $disconnect."""
        await self.tracker.wait_for(self._defaults)
        self.counters.reset()
        logged = log_position()
        client = await self.open("project")
        await self.tracker.wait_for(self._defaults)
        _, setup_ops, _ = self.counters.snapshot()
        setup_log = log_position() - logged
        self.counters.reset()
        await self.close("project", client)
        _, disconnect_ops, _ = self.counters.snapshot()
        return {
            "setup": dict(setup_ops),
            "disconnect": dict(disconnect_ops),
            "setup_log_bytes": setup_log,
            "requests_per_call": sum(setup_ops.values()) + sum(disconnect_ops.values()),
        }

    async def interleaved(
        self, label: str, *, turns: int, tokens: int, forget: bool = False, partials: PartialMode = "off"
    ) -> list[TurnRecord]:
        """``turns`` turns per side in calls of ``turns_per_call``, the two sides alternating in
        random order. ``forget``: before each project prompt, the relay forgets which call the
        connection belongs to (a Lambda environment that did not see the setup)."""
        o = self.o
        records: list[TurnRecord] = []
        for n in range(math.ceil(turns / o.turns_per_call)):
            clients = {side: await self.open(side) for side in SIDES}
            await asyncio.sleep(o.setup_pause_s)
            for t in range(1, o.turns_per_call + 1):
                if sum(r.side == "project" for r in records) >= turns:
                    break
                order = list(SIDES)
                self.rng.shuffle(order)
                for side in order:
                    if side == "project" and forget:
                        forget_calls()
                    records.append(
                        await self.turn(side, clients[side], f"{label}{side[0]}{n}", t, tokens, partials=partials)
                    )
                await asyncio.sleep(o.think_s)
            for side, client in clients.items():
                await self.close(side, client)
        return records

    async def project_only(self, label: str, *, turns: int, tokens: int) -> list[TurnRecord]:
        """Project turns on one call, for counting (no baseline needed)."""
        client = await self.open("project")
        await asyncio.sleep(self.o.setup_pause_s)
        records = [await self.turn("project", client, label, t, tokens) for t in range(1, turns + 1)]
        await self.close("project", client)
        return records

    # -- figure 5 -------------------------------------------------------------------------------

    async def concurrent(self, side: Side, *, calls: int, turns: int, tokens: int) -> dict[str, Any]:
        o = self.o
        rng = random.Random(o.seed + (1 if side == "project" else 2))
        low, high = (0.2, 0.6) if o.pace == "burst" else (0.5, 1.5)
        plans = [
            (rng.uniform(0, o.greeting_s or 1.0), [rng.uniform(low, high) for _ in range(turns)]) for _ in range(calls)
        ]
        self.counters.reset_round_trips()
        cpu_before = time.process_time()
        errors_before = self.stack.gateway.error_frames if self.stack.gateway else 0
        failures_before = len(self.tracker.failures)
        started_defaults = self.tracker.count("$default")

        async def one(i: int) -> tuple[RelayClient, list[TurnRecord]]:
            start, thinks = plans[i]
            await asyncio.sleep(start)
            if side == "project":
                client = RelayClient.for_call(self.stack.urls.relay, self.token)
            else:
                assert self.baseline is not None
                client = RelayClient(self.baseline.url)
            await client.open()
            await asyncio.sleep(o.greeting_s)
            out = []
            call = f"conc{side[0]}{i}"
            for t in range(1, turns + 1):
                timing = await client.turn(prompt(call, t, tokens), timeout_s=60)
                out.append(TurnRecord(side, call, t, timing, _ok(timing, call, t, tokens)))
                await asyncio.sleep(thinks[t - 1] + (listening(timing) if o.pace == "listen" else 0.0))
            await client.close()
            return client, out

        results = await asyncio.gather(*(one(i) for i in range(calls)))
        cpu_s = time.process_time() - cpu_before
        records = [r for _, rs in results for r in rs]
        firsts = [ms(r.timing.first_text_s) for r in records]
        first_ms = [f for f in firsts if f is not None]
        added = [f - self.o.ttft_s * 1000 for f in first_ms]
        out: dict[str, Any] = {
            "calls": calls,
            "turns": len(records),
            "delivered": sum(r.ok for r in records),
            "first_text": summary(first_ms),
            "added_over_ttft": summary(added),
            "process_cpu_s_per_turn": round(cpu_s / max(len(records), 1), 4),
        }
        if side == "project":
            await self.tracker.wait_for(started_defaults + calls * (turns + 1), timeout_s=60)
            out["history_problems"] = self._stored_history_problems(results, turns, tokens)
            out["error_frames"] = (self.stack.gateway.error_frames if self.stack.gateway else 0) - errors_before
            out["failed_invocations"] = len(self.tracker.failures) - failures_before
            out["round_trips_ms"] = {k: summary(v) for k, v in self.counters.round_trip_ms().items()}
        return out

    def _stored_history_problems(
        self, results: list[tuple[RelayClient, list[TurnRecord]]], turns: int, tokens: int
    ) -> list[str]:
        """Each call's turn items in DynamoDB: the greeting, then its own prompts and replies."""
        from local.dynamodb import client as dynamodb_client
        from voice_agent.agent.config import AGENT

        db = dynamodb_client(self.stack.urls.dynamodb)
        problems: list[str] = []
        for client, records in results:
            call = records[0].call if records else "?"
            items = db.query(
                TableName=self.stack.options.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :turn)",
                ExpressionAttributeValues={":pk": {"S": f"CALL#{client.call_sid}"}, ":turn": {"S": "TURN#"}},
                ConsistentRead=True,
            )["Items"]
            items.sort(key=lambda i: i["sk"]["S"])
            got = [(i["role"]["S"], i.get("text", {}).get("S", "")) for i in items]
            want = [("assistant", AGENT.lines.welcome_greeting)]
            for t in range(1, turns + 1):
                want += [("user", prompt(call, t, tokens)), ("assistant", reply_text(call, t, tokens))]
            if got != want:
                problems.append(f"call {call}: stored history differs ({len(got)} items, {len(want)} expected)")
        return problems


def log_position() -> int:
    """Bytes the handlers have logged so far (the benchmark sends their stdout to a file)."""
    stream = sys.stdout
    try:
        stream.flush()
        return stream.tell()
    except (OSError, ValueError):
        return 0


def listening(timing: TurnTiming) -> float:
    """The rest of the reply's playback after its last frame (speech starts with the first text)."""
    if timing.first_text_s is None or timing.last_s is None:
        return 0.0
    spoken_for = timing.last_s - timing.first_text_s
    return max(0.0, len(timing.text.split()) / SPEECH_WORDS_PER_S - spoken_for)


def _partials(text: str, mode: PartialMode) -> Partials | None:
    """``same``: the last partial holds every word (the final repeats it); ``differs``: the final
    prompt adds a word the partials never had (a speculation on them must not be heard)."""
    if mode == "off":
        return None
    return Partials.of(text if mode == "same" else text.rsplit(" ", 1)[0])


def forget_calls() -> None:
    """Make the relay forget every connection -> call it has seen (a fresh execution environment)."""
    from voice_agent import wiring

    relay = wiring.relay()
    forget = getattr(relay, "forget_calls", None)
    if callable(forget):
        forget()


def _ok(timing: TurnTiming, call: str, turn: int, tokens: int) -> bool:
    return (
        timing.completed
        and timing.text == reply_text(call, turn, tokens)
        and not timing.other
        and not timing.early_frames
    )


# -- figures from the records ---------------------------------------------------------------------


def latency_figure(records: list[TurnRecord], ttft_s: float) -> dict[str, Any]:
    by = {side: [ms(r.timing.first_text_s) for r in records if r.side == side] for side in SIDES}
    project = [v for v in by["project"] if v is not None]
    baseline = [v for v in by["baseline"] if v is not None]
    p, b = summary(project), summary(baseline)
    out: dict[str, Any] = {"project": p, "baseline": b, "failed_turns": sum(not r.ok for r in records)}
    if p["n"] and b["n"]:
        out["added_median_ms"] = round(p["median_ms"] - b["median_ms"], 1)
        out["added_p95_ms"] = round(p["p95_ms"] - b["p95_ms"], 1)
        out["ratio_median"] = round(p["median_ms"] / b["median_ms"], 3)
        out["ratio_p95"] = round(p["p95_ms"] / b["p95_ms"], 3)
        out["added_share_of_ttft"] = round(out["added_median_ms"] / (ttft_s * 1000), 3)
    return out


def frames_figure(records: list[TurnRecord], tokens: int, ttft_s: float) -> dict[str, Any]:
    project = [r for r in records if r.side == "project"]
    baseline = [r for r in records if r.side == "baseline"]
    posts = [r.posts for r in project]
    first_token = reply_tokens("x", 1, tokens)[0]
    median_posts = sorted(posts)[len(posts) // 2] if posts else None
    return {
        "reply_tokens": tokens,
        "project_posts": {"median": median_posts, "min": min(posts, default=None), "max": max(posts, default=None)},
        "project_text_frames_received": sorted(r.timing.text_frames for r in project),
        "baseline_frames": sorted(r.timing.text_frames for r in baseline),
        "posts_per_token": None if median_posts is None else round(median_posts / tokens, 3),
        "first_frame_is_first_token": all(r.timing.first_frame == first_token for r in project),
        "first_text": latency_figure(records, ttft_s),
        "failed_turns": sum(not r.ok for r in records),
    }


def dynamodb_figure(plain: list[TurnRecord], long: list[TurnRecord]) -> dict[str, Any]:
    def per_turn(records: list[TurnRecord]) -> dict[str, Any]:
        project = [r for r in records if r.side == "project"]
        fixed = [r.purposes[c.START_TURN] + r.purposes[c.HISTORY] + r.purposes[c.TURN_WRITE] for r in project]
        claims = [r.purposes[c.CLAIM] for r in project]
        posts = [r.posts for r in project]
        ops: Counter[str] = Counter()
        purposes: Counter[str] = Counter()
        for r in project:
            ops.update(r.operations)
            purposes.update(r.purposes)
        n = max(len(project), 1)
        reads = sum(v for k, v in ops.items() if k in c.READS)
        return {
            "turns": len(project),
            "fixed_per_turn": {"min": min(fixed, default=None), "max": max(fixed, default=None)},
            "claims_per_turn": {"min": min(claims, default=None), "max": max(claims, default=None)},
            "posts_per_turn": {"min": min(posts, default=None), "max": max(posts, default=None)},
            "one_claim_per_post": all(cl == p for cl, p in zip(claims, posts, strict=True)),
            "mean_by_purpose": {k: round(v / n, 2) for k, v in sorted(purposes.items())},
            "mean_by_operation": {k: round(v / n, 2) for k, v in sorted(ops.items())},
            "reads_per_turn": round(reads / n, 2),
            "writes_per_turn": round((sum(ops.values()) - reads) / n, 2),
        }

    return {"plain_turn": per_turn(plain), "long_reply_turn": per_turn(long)}
