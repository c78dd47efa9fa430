"""`make dev` and `make demo` as processes: they start, stop cleanly on a signal, and leave no
DynamoDB Local child behind (even when the parent is killed outright, on Linux)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from local.dynamodb import find_jar, find_java

pytestmark = pytest.mark.timeout(300)  # processes start their own stack; make demo takes ~20 s

ROOT = Path(__file__).resolve().parents[2]
needs_dynamodb_local = pytest.mark.skipif(
    find_java() is None or find_jar() is None, reason="needs Java and DynamoDB Local (make local-deps)"
)


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def wait_dead(pid: int, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def start_dev(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, Any], Path]:
    ready = tmp_path / "ready.json"
    log = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if k not in ("TWILIO_AUTH_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "local.dev",
                "--http-port",
                "0",
                "--ws-port",
                "0",
                "--ready-file",
                str(ready),
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 90
    while not ready.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"make dev did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return process, json.loads(ready.read_text()), log


@needs_dynamodb_local
def test_make_dev_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    process, ready, log = start_dev(tmp_path)
    java = ready["dynamodb_pid"]
    assert ready["dynamodb_engine"] == "dynamodb-local"
    assert alive(java)
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    assert wait_dead(java), "DynamoDB Local outlived make dev"
    output = log.read_text()
    assert "Twilio signatures  NOT CHECKED" in output  # no TWILIO_AUTH_TOKEN: said loudly
    assert "Stopped." in output
    assert not (tmp_path / "ready.json").exists()


@needs_dynamodb_local
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_dynamodb_local_dies_with_a_killed_parent(tmp_path: Path) -> None:
    process, ready, _ = start_dev(tmp_path)
    java = ready["dynamodb_pid"]
    process.kill()  # SIGKILL: no cleanup runs in the parent
    process.wait(10)
    assert wait_dead(java), "DynamoDB Local outlived a killed make dev"


def test_make_dev_falls_back_to_moto_and_says_so(tmp_path: Path) -> None:
    process, ready, log = start_dev(tmp_path, "--dynamodb", "moto")
    try:
        assert ready["dynamodb_engine"] == "moto"
        assert ready["dynamodb_pid"] is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert "moto server stands in for DynamoDB" in log.read_text()


def test_make_demo_places_the_call_and_exits_zero() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    completed = subprocess.run(
        [sys.executable, "-m", "local.demo"], cwd=ROOT, env=env, capture_output=True, timeout=240, check=False
    )
    output = completed.stdout.decode(errors="replace")
    assert completed.returncode == 0, output[-4000:] + completed.stderr.decode(errors="replace")[-2000:]
    assert "PASSED: demo" in output
    assert "transferred to +15555550100" in output
    assert "Latency per turn" in output
