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

from local.bedrock_server import BedrockStandIn
from local.caller import scenario
from local.demo_model import DemoBrain
from local.dynamodb import find_jar, find_java
from tests.e2e.conftest import explain, run, scripted

pytestmark = pytest.mark.timeout(300)  # processes start their own stack; make demo takes ~20 s

ROOT = Path(__file__).resolve().parents[2]
# The running test stack's model settings, which a child process must not inherit.
MODEL_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_PROVIDER", "LLM_MODEL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
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


def start_dev(
    tmp_path: Path, *extra: str, extra_env: dict[str, str | None] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, Any], Path]:
    """``make dev`` as a child process; ``extra_env``: variables to set (None: to remove)."""
    ready = tmp_path / "ready.json"
    log = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if k not in (*MODEL_VARIABLES, "TWILIO_AUTH_TOKEN")}
    for name, value in (extra_env or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
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


def test_make_demo_places_the_call_and_exits_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    env["LOCAL_CALL_RECORDS_DIR"] = str(tmp_path / "calls")
    env.pop("AGENTS_DIR", None)  # `make demo` shows the shipped agents (two numbers), as a fork runs it
    completed = subprocess.run(
        [sys.executable, "-m", "local.demo"], cwd=ROOT, env=env, capture_output=True, timeout=240, check=False
    )
    output = completed.stdout.decode(errors="replace")
    assert completed.returncode == 0, output[-4000:] + completed.stderr.decode(errors="replace")[-2000:]
    assert "PASSED: demo" in output
    assert "transferred to +15555550100" in output
    assert "Latency per turn" in output
    # The second call dials the trade desk's number: another agent answers and transfers.
    assert "PASSED: trade_desk" in output
    assert "trade desk, this is Max" in output and "transferred to +15555550111" in output
    # The demo says where each call's record is, and `make calls` / `make transcript` read them.
    records = sorted((tmp_path / "calls").glob("CA*.json"), key=lambda p: output.index(f"Call record: {p}"))
    assert len(records) == 2
    record = records[0]
    listed = subprocess.run(
        [sys.executable, "-m", "local.records", "list"], cwd=ROOT, env=env, capture_output=True, check=True
    ).stdout.decode()
    assert record.stem in listed and "transferred" in listed and "+*******0123" in listed
    shown = subprocess.run(  # noqa: S603 (this interpreter, our module, a CallSid prefix)
        [sys.executable, "-m", "local.records", "show", record.stem[:12]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "outcome: transferred" in shown and "Caller  Hi! When are you open on Sunday?   [first phrase" in shown


def test_make_dev_sends_every_turn_to_the_bedrock_endpoint_and_model_the_environment_names(tmp_path: Path) -> None:
    """The contract: LLM_PROVIDER=bedrock, LLM_MODEL, AWS_ENDPOINT_URL_BEDROCK_RUNTIME, a region and
    credentials in the environment, no OPENAI_* variable: every turn is a converse_stream request to
    that endpoint, for that model, signed with those credentials for that region."""
    model_id = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    with BedrockStandIn(DemoBrain()) as bedrock:
        process, ready, log = start_dev(
            tmp_path,
            "--dynamodb",
            "moto",
            extra_env={
                "LLM_PROVIDER": "bedrock",
                "LLM_MODEL": model_id,
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.endpoint_url,
                "AWS_REGION": "eu-west-1",
                "AWS_DEFAULT_REGION": None,
                "AWS_ACCESS_KEY_ID": "AKIACONTRACT00000TEST",
                "AWS_SECRET_ACCESS_KEY": "contract-test-secret",
                "AWS_SESSION_TOKEN": None,
            },
        )
        try:
            call = scripted(
                [
                    {"say": "Hi! When are you open on Sunday?", "expect": "Sunday"},
                    {"say": "Can you check my order? It's 1001.", "expect": "cordless drill"},
                    {"hangup": True},
                ]
            )
            result = run(scenario.run(call, voice_url=ready["voice_url"], auth_token=None, out=lambda _: None))
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
    assert result.passed, explain(result) + log.read_text(errors="replace")[-3000:]
    assert len(bedrock.model_ids()) >= 3  # two turns, one of them with a tool round
    assert set(bedrock.model_ids()) == {model_id}
    assert {tuple(sorted(s.items())) for s in bedrock.signers} == {
        (("access_key_id", "AKIACONTRACT00000TEST"), ("region", "eu-west-1"), ("scheme", "sigv4"))
    }
    assert bedrock.refused == []
    assert model_id in ready["llm"] and bedrock.endpoint_url in ready["llm"]
