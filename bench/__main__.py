"""``make bench`` (``python -m bench``): the five figures, a table, and ``.bench/results.json``.

The handlers' JSON logs (what CloudWatch would get) go to ``.bench/bench.log``; the benchmark
measures their size for the cost model. Timing on a shared machine is noisy: look at the load
average printed with the results, and re-run when the machine is quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from statistics import median
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / ".bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--quick", action="store_true", help="a smoke run: a few turns of everything (no real figures)")
    p.add_argument("--ttft-ms", type=float, default=200.0, help="the fake model's time to first token")
    p.add_argument("--token-ms", type=float, default=20.0, help="the fake model's interval between tokens")
    p.add_argument("--turns", type=int, default=50, help="measured turns per side for figure 1")
    p.add_argument("--calls", type=int, default=50, help="concurrent calls for figure 5")
    p.add_argument("--call-turns", type=int, default=5, help="turns per concurrent call")
    p.add_argument("--greeting-s", type=float, default=3.0, help="how long a caller listens to the greeting")
    p.add_argument("--burst", action="store_true", help="figure 5's callers answer at once (a stress test)")
    p.add_argument("--network-ms", type=float, default=5.0, help="round trip added per AWS request in figure 1c")
    p.add_argument("--cold-repeats", type=int, default=5, help="fresh interpreters per entry point (figure 4)")
    p.add_argument("--dynamodb", choices=("auto", "dynamodb-local", "moto"), default="auto")
    p.add_argument(
        "--skip", action="append", default=[], choices=("latency", "frames", "bedrock", "concurrency", "cold", "first")
    )
    p.add_argument("--out", type=Path, default=OUT_DIR / "results.json")
    p.add_argument("--label", default="", help="a name for this run (e.g. before / after)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = sys.stdout
    log_path = args.out.parent / "bench.log"
    with log_path.open("w", encoding="utf-8") as log:
        sys.stdout = log  # the handlers' logs (their logger binds to sys.stdout when first imported)
        try:
            results = run(args, report, log_path)
        finally:
            sys.stdout = report
    from bench.report import rows, table

    results_rows = rows(results)
    print("", file=report)
    print(table(results_rows), file=report)
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\nresults: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}", file=report)
    missed = [r.figure.strip() for r in results_rows if r.met is False]
    if missed:
        print("targets not met: " + "; ".join(missed), file=report)
    return 0


def run(args: argparse.Namespace, report: IO[str], log_path: Path) -> dict[str, Any]:
    from bench.live import LiveOptions

    o = LiveOptions(
        ttft_s=args.ttft_ms / 1000,
        token_interval_s=args.token_ms / 1000,
        turns=args.turns,
        calls=args.calls,
        call_turns=args.call_turns,
        greeting_s=args.greeting_s,
        dynamodb=args.dynamodb,
        pace="burst" if args.burst else "listen",
        network_ms=args.network_ms,
    )
    cold_repeats, bytecode_repeats = args.cold_repeats, max(1, (args.cold_repeats + 1) // 2)
    if args.quick:
        o = replace(
            o,
            turns=4,
            turns_per_call=2,
            long_turns=1,
            calls=4,
            call_turns=2,
            greeting_s=0.3,
            miss_turns=2,
            partial_turns=2,
            network_turns=2,
            pace="burst",
        )
        cold_repeats, bytecode_repeats = 1, 0

    def say(text: str) -> None:
        print(text, file=report, flush=True)

    started = time.monotonic()
    results: dict[str, Any] = {
        "label": args.label,
        "options": asdict(o) | {"cold_repeats": cold_repeats, "quick": args.quick},
        "meta": _meta(),
    }
    say(
        f"make bench: TTFT {o.ttft_s * 1000:.0f} ms, a token every {o.token_interval_s * 1000:.0f} ms;"
        f" load average {results['meta']['load_before']} ({os.cpu_count()} cores); logs in {log_path.name}"
    )
    asyncio.run(_live(args, o, results, say, cold_repeats=cold_repeats, bytecode_repeats=bytecode_repeats))
    if "first" not in args.skip:
        say("first turn of a fresh process (child processes), on each provider ...")
        greetings = [o.greeting_s] if args.quick else [0.0, o.greeting_s]
        results["first_turn"] = [_first_turn(g, o, log_path, p) for p in ("openai", "bedrock") for g in greetings]
    results["counts_for_cost"] = _counts_for_cost(results)
    from bench.cost import Assumptions, model, usage_from_results

    assumptions = Assumptions()
    results["cost"] = model(usage_from_results(results, assumptions.reply_tokens), assumptions)
    results["meta"]["load_after"] = _load()
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    say(f"done in {results['meta']['seconds']:.0f} s; load average {results['meta']['load_after']}")
    return results


async def _live(
    args: argparse.Namespace,
    o: Any,
    results: dict[str, Any],
    say: Callable[[str], None],
    *,
    cold_repeats: int,
    bytecode_repeats: int,
) -> None:
    from bench.live import Live, dynamodb_figure

    with Live(o) as live:
        results["meta"]["dynamodb"] = live.engine
        say(f"local stack up ({live.engine}); warming both servers ...")
        await live.interleaved("warm", turns=2, tokens=o.short_tokens)
        plain = await _latency(live, o, results, say) if "latency" not in args.skip else []
        long_ = await _frames(live, o, results, say) if "frames" not in args.skip else []
        if plain and long_:
            results["dynamodb"] = dynamodb_figure(plain, long_)
        if "bedrock" not in args.skip:
            results["bedrock"] = await _bedrock_path(live, o, say)
        await _typical_turn(live, results, say, turns=1 if args.quick else 3)
        results["per_call"] = await live.per_call()
        if "concurrency" not in args.skip:
            say(f"5. {o.calls} concurrent calls of {o.call_turns} turns ({o.pace}), project then baseline ...")
            problems_before = len(live.brain.problems)
            project = await live.concurrent("project", calls=o.calls, turns=o.call_turns, tokens=o.short_tokens)
            project["model_history_problems"] = live.brain.problems[problems_before:]
            baseline = await live.concurrent("baseline", calls=o.calls, turns=o.call_turns, tokens=o.short_tokens)
            results["concurrency"] = {"project": project, "baseline": baseline}
        results["model_history_problems"] = list(live.brain.problems)
        if "cold" not in args.skip:
            say(f"4. cold start: {cold_repeats} fresh interpreters per entry point and mode ...")
            results["cold_start"] = await _cold_start(
                live, cold_repeats=cold_repeats, bytecode_repeats=bytecode_repeats
            )


async def _latency(live: Any, o: Any, results: dict[str, Any], say: Callable[[str], None]) -> list[Any]:
    from bench.live import latency_figure

    say(f"1. added latency: {o.turns} interleaved turns a side ...")
    live.counters.reset_round_trips()
    plain: list[Any] = await live.interleaved("lat", turns=o.turns, tokens=o.short_tokens)
    results["latency"] = latency_figure(plain, o.ttft_s)
    results["latency"]["round_trips_ms"] = _round_trips(live)
    if o.partial_turns:
        results["latency_partials"] = await _partials(live, o, say)
    if o.miss_turns:
        say(f"   ... and {o.miss_turns} on connections this process has not seen ...")
        miss = await live.interleaved("miss", turns=o.miss_turns, tokens=o.short_tokens, forget=True)
        results["latency_unseen_connection"] = latency_figure(miss, o.ttft_s)
    if o.network_ms:
        say(f"   ... and with {o.network_ms:g} ms added to every AWS request (an in-region network) ...")
        live.counters.network_s = o.network_ms / 1000
        try:
            seen = await live.interleaved("net", turns=o.network_turns, tokens=o.short_tokens)
            unseen = await live.interleaved("netmiss", turns=o.network_turns, tokens=o.short_tokens, forget=True)
        finally:
            live.counters.network_s = 0.0
        results["latency_with_network"] = {
            "network_ms": o.network_ms,
            "seen": latency_figure(seen, o.ttft_s),
            "unseen": latency_figure(unseen, o.ttft_s),
        }
    return plain


async def _partials(live: Any, o: Any, say: Callable[[str], None]) -> dict[str, Any]:
    """Figure 1p: the caller's words arrive as partial prompts first (150 ms apart, the final
    prompt 500 ms after the last), so the project may speculate; both sides timed from the final.
    Then turns whose final prompt adds a word the partials never had (the speculation must not be
    heard: the reply is checked against the final words)."""
    from bench.live import latency_figure

    say(f"   ... and {o.partial_turns} with partial prompts first (speculation) ...")
    stats = _speculation_stats()
    stats.reset()
    same = await live.interleaved("part", turns=o.partial_turns, tokens=o.short_tokens, partials="same")
    confirmed = stats.snapshot()
    differs_turns = max(2, o.partial_turns // 5)
    stats.reset()
    differs = await live.interleaved("diff", turns=differs_turns, tokens=o.short_tokens, partials="differs")
    superseded = stats.snapshot()
    spoken = o.short_tokens * sum(r.side == "project" for r in [*same, *differs])
    unspoken = int(confirmed["tokens_unspoken"]) + int(superseded["tokens_unspoken"])
    return {
        "same": latency_figure(same, o.ttft_s),
        "same_speculation": confirmed,
        "differs": latency_figure(differs, o.ttft_s),
        "differs_speculation": superseded,
        "project_turns": sum(r.side == "project" for r in same),
        "partials_per_turn": _mean_words(same),
        "opens_per_turn": round(int(confirmed["opened"]) / max(1, sum(r.side == "project" for r in same)), 2),
        "tokens_spoken": spoken,
        "tokens_unspoken": unspoken,
        "unspoken_share": round(unspoken / (spoken + unspoken), 3) if spoken + unspoken else 0.0,
        "early_frames": sum(r.timing.early_frames for r in [*same, *differs]),
    }


class _NoSpeculation:
    """A runtime without speculation (the benchmark run over an older ``functions/``)."""

    def reset(self) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {"opened": 0, "requests": 0, "ended": {}, "tokens_unspoken": 0, "polls": 0, "wait_s": 0.0}


def _speculation_stats() -> Any:
    try:
        from voice_agent.core.speculation import STATS
    except ImportError:
        return _NoSpeculation()
    return STATS


def _mean_words(records: list[Any]) -> float:
    """Partials a project turn sent: one a word of what the caller said."""
    from bench.llm import prompt

    said = [len(prompt(r.call, r.turn, 12).split()) for r in records if r.side == "project"]
    return round(sum(said) / len(said), 2) if said else 0.0


async def _bedrock_path(live: Any, o: Any, say: Callable[[str], None]) -> dict[str, Any]:
    """Figures 1 and 2 again with the project's model on Bedrock (boto3, ConverseStream, the AWS
    event stream) instead of OpenAI's protocol, against the same baseline and the same model."""
    from bench.live import frames_figure, latency_figure

    assert live.stack.bedrock is not None
    requests_before, refused_before = len(live.stack.bedrock.requests), len(live.stack.bedrock.refused)
    live.use("bedrock")
    try:
        say(f"1b/2b. the Bedrock path: {o.turns} interleaved turns a side, {o.long_turns} long replies ...")
        plain = await live.interleaved("brlat", turns=o.turns, tokens=o.short_tokens)
        long_ = await live.interleaved("brlong", turns=o.long_turns, tokens=o.long_tokens)
    finally:
        live.use("openai")
    return {
        "latency": latency_figure(plain, o.ttft_s),
        "frames": frames_figure(long_, o.long_tokens, o.ttft_s),
        "requests": len(live.stack.bedrock.requests) - requests_before,
        "refused": live.stack.bedrock.refused[refused_before:],
    }


async def _frames(live: Any, o: Any, results: dict[str, Any], say: Callable[[str], None]) -> list[Any]:
    from bench.live import frames_figure

    say(f"2. frames: {o.long_turns} interleaved {o.long_tokens}-token replies a side ...")
    long_: list[Any] = await live.interleaved("long", turns=o.long_turns, tokens=o.long_tokens)
    results["frames"] = frames_figure(long_, o.long_tokens, o.ttft_s)
    return long_


async def _typical_turn(live: Any, results: dict[str, Any], say: Callable[[str], None], *, turns: int) -> None:
    from bench.cost import Assumptions
    from bench.live import dynamodb_figure

    tokens = Assumptions().reply_tokens
    say(f"   counting a typical turn for the cost model ({tokens}-token replies) ...")
    typical = await live.project_only("cost", turns=turns, tokens=tokens)
    results["typical_turn"] = {
        "reply_tokens": tokens,
        "posts": median(r.posts for r in typical),
        "log_bytes": median(r.log_bytes for r in typical),
        "dynamodb": dynamodb_figure(typical, [])["plain_turn"],
        "failed_turns": sum(not r.ok for r in typical),
    }


async def _cold_start(live: Any, *, cold_repeats: int, bytecode_repeats: int) -> dict[str, Any]:
    from bench import coldstart
    from voice_agent import wiring
    from voice_agent.protocol.inbound import Setup
    from voice_agent.signatures import sign

    def bind(connection_id: str, call_sid: str) -> None:
        wiring.session_store().bind_connection(connection_id, Setup(session_id="VXprobe", call_sid=call_sid))

    env = coldstart.ProbeEnvironment(env=dict(live.stack.env), bind_connection=bind)
    relay_url = live.stack.env["RELAY_PUBLIC_URL"]
    return await asyncio.to_thread(
        coldstart.run,
        env,
        repeats=cold_repeats,
        bytecode_repeats=bytecode_repeats,
        upgrade_signature=sign(live.token, relay_url),
    )


def _round_trips(live: Any) -> dict[str, Any]:
    from bench.stats import summary

    return {k: summary(v) for k, v in sorted(live.counters.round_trip_ms().items())}


def _first_turn(greeting_s: float, o: Any, log_path: Path, provider: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out, log_path.open("a", encoding="utf-8") as log:
        command = [sys.executable, "-m", "bench.first_turn", "--greeting-s", str(greeting_s), "--provider", provider]
        command += ["--ttft-s", str(o.ttft_s), "--token-interval-s", str(o.token_interval_s)]
        command += ["--tokens", str(o.short_tokens), "--out", out.name]
        subprocess.run(command, cwd=ROOT, stdout=log, stderr=log, check=True, timeout=180)  # noqa: S603
        return dict(json.loads(Path(out.name).read_text(encoding="utf-8")))


def _counts_for_cost(results: dict[str, Any]) -> dict[str, Any]:
    """What the cost model reads (``cost.usage_from_results``): counted on a typical turn."""
    counts: dict[str, Any] = {}
    typical = results.get("typical_turn")
    if typical:
        by_purpose = typical["dynamodb"]["mean_by_purpose"]
        counts["reply_tokens"] = typical["reply_tokens"]
        counts["frames_per_reply"] = typical["posts"]
        counts["dynamodb_writes_per_turn"] = by_purpose.get("start_turn", 0) + by_purpose.get("turn_write", 0)
        counts["dynamodb_reads_per_turn"] = by_purpose.get("history", 0)
        claims, posts = by_purpose.get("claim", 0), typical["posts"]
        counts["dynamodb_claims_per_frame"] = round(claims / posts, 3) if posts else None
        counts["log_bytes_per_turn"] = typical["log_bytes"]
    per_call = results.get("per_call")
    if per_call:
        counts["dynamodb_writes_per_call"] = per_call["requests_per_call"] + 1  # + /action's end_call
        counts["log_bytes_per_other_frame"] = per_call["setup_log_bytes"]
    return counts


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603, S607 (git, fixed args)
    except OSError:
        return ""
    return done.stdout.strip()


def _meta() -> dict[str, Any]:
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--", "functions"))
    return {
        "commit": commit + ("+changes" if dirty else ""),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_before": _load(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
