"""``make demo``: start the local stack with the offline model, place the scripted demo call, print
the transcript and the latencies, wait for the call's record and say where it is, stop everything;
exit 0 only if the call met its expectations and left its record.

The stack runs as a child process (``python -m local.dev``, exactly what ``make dev`` runs)
on free ports, with its logs in ``.local/demo-stack.log``, so the transcript stays readable and a
``make dev`` already running is left alone. Signatures are checked: the demo makes up an auth
token and both the stack and the simulated caller use it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from local.caller import scenario as scenarios
from local.processes import die_with_parent, terminate
from local.stack import HTTP_PORT_VARIABLE, WS_PORT_VARIABLE
from voice_agent import env_names as names

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0
# The record is asked for a few seconds after the end callback (the last writes land first).
RECORD_TIMEOUT_S = 20.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--scenario", action="append", default=None, help="scenario(s) to run (default: demo)")
    parser.add_argument("--log-file", type=Path, default=ROOT / ".local" / "demo-stack.log")
    parser.add_argument("--dynamodb", choices=("auto", "dynamodb-local", "moto"), default="auto")
    return parser.parse_args(argv)


def start_stack(log_file: Path, ready_file: Path, token: str, dynamodb: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env[names.TWILIO_AUTH_TOKEN] = token
    env[HTTP_PORT_VARIABLE] = "0"
    env[WS_PORT_VARIABLE] = "0"
    env.setdefault("PYTHONUNBUFFERED", "1")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as log:
        command = [sys.executable, "-m", "local.dev", "--llm", "demo", "--dynamodb", dynamodb]
        command += ["--ready-file", str(ready_file)]
        return subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 (one prctl call, async-signal-safe)
        )


def wait_ready(process: subprocess.Popen[bytes], ready_file: Path, timeout_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready_file.is_file():
            data: dict[str, Any] = json.loads(ready_file.read_text(encoding="utf-8"))
            return data
        if process.poll() is not None:
            return None
        time.sleep(0.1)
    return None


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names_to_run = args.scenario or ["demo", "trade_desk"]  # two numbers, two agents (the agents folder)
    try:
        to_run = [scenarios.load(scenarios.find(n)) for n in names_to_run]
    except scenarios.ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    started = time.monotonic()
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="voice-agent-demo-") as tmp:
        ready_file = Path(tmp) / "ready.json"
        print("Starting the local stack (offline demo model)...", flush=True)
        process = start_stack(args.log_file, ready_file, token, args.dynamodb)
        passed = False
        try:
            ready = wait_ready(process, ready_file, START_TIMEOUT_S)
            if ready is None:
                print(f"The local stack did not start. Last lines of {args.log_file}:\n{tail(args.log_file)}")
                return 1
            print(f"  webhook   {ready['voice_url'] or '(none in this checkout: calling the socket directly)'}")
            print(f"  relay     {ready['relay_url']}")
            print(f"  DynamoDB  {ready['dynamodb']}")
            print(f"  model     {ready['llm']}")
            print(f"  signatures checked: {'yes' if ready['signatures_checked'] else 'no'}")
            print(f"  (stack logs: {args.log_file})", flush=True)
            passed = asyncio.run(_run_all(to_run, ready, token))
        except KeyboardInterrupt:
            print("Interrupted.")
        finally:
            status = terminate(process, timeout_s=30)
            if status != 0:
                print(f"The local stack exited with status {status}. Last lines of {args.log_file}:")
                print(tail(args.log_file))
                passed = False
    verdict = "passed" if passed else "FAILED"
    print(f"\nDemo {verdict} in {time.monotonic() - started:.1f} s (stack start and stop included).")
    return 0 if passed else 1


async def _run_all(to_run: list[scenarios.Scenario], ready: dict[str, Any], token: str) -> bool:
    ok = True
    for scenario in to_run:
        print(f"\n== {scenario.name}: {scenario.description}\n", flush=True)
        if ready.get("voice_url"):
            result = await scenarios.run(scenario, voice_url=ready["voice_url"], auth_token=token)
        else:
            result = await scenarios.run(scenario, relay_url=ready["relay_url"], auth_token=token)
        for line in scenarios.summary(result):
            print(line)
        ok = ok and result.passed and await _record(ready, result.call.call_sid)
    return ok


async def _record(ready: dict[str, Any], call_sid: str) -> bool:
    """Wait for the call's record (the records function writes it after the call) and say where."""
    directory = ready.get("records_dir")
    if not directory or not call_sid:
        return True
    path = Path(directory) / f"{call_sid}.json"
    deadline = time.monotonic() + RECORD_TIMEOUT_S
    while not path.is_file() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    if not path.is_file():
        print(f"\nNo call record at {path} within {RECORD_TIMEOUT_S:g} s (see the stack log).")
        return False
    record = json.loads(path.read_text(encoding="utf-8"))
    print(f"\nCall record: {path}")
    print(
        f"  outcome {record['outcome']}, {len(record['transcript'])} lines, {len(record['turns'])} turns, "
        f"{path.stat().st_size:,} bytes; its event is in {path.parent / 'events.jsonl'}"
    )
    print("  `make calls` lists the records, `make transcript` prints this one.")
    return True


if __name__ == "__main__":
    sys.exit(main())
