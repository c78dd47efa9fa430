"""`make bench` still runs end to end (a --quick pass: a few turns of every figure). Only what is
not timing is asserted; the timings themselves are the benchmark's business, not the test suite's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# The bench starts its own stack; none of the e2e stack's settings may leak into it.
INHERITED = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "JAVA_HOME")


def test_a_quick_bench_run_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k in INHERITED}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "figure" in done.stdout
    r = json.loads(out.read_text())

    assert r["latency"]["project"]["n"] == r["latency"]["baseline"]["n"] == 4
    assert r["latency"]["failed_turns"] == 0
    frames = r["frames"]
    assert frames["failed_turns"] == 0
    assert frames["first_frame_is_first_token"]
    assert frames["project_posts"]["max"] <= frames["reply_tokens"] / 5
    bedrock = r["bedrock"]  # the same figures with the project's model on Bedrock
    assert bedrock["latency"]["project"]["n"] == 4 and bedrock["latency"]["failed_turns"] == 0
    assert bedrock["frames"]["failed_turns"] == 0 and bedrock["frames"]["first_frame_is_first_token"]
    assert bedrock["requests"] >= 5 and bedrock["refused"] == []
    plain = r["dynamodb"]["plain_turn"]
    # 4 (generation, history query, two turn writes); 3 when the environment kept the connection's
    # history from its last turn (issue 15: no query).
    assert 3 <= plain["fixed_per_turn"]["min"] <= plain["fixed_per_turn"]["max"] <= 4
    assert plain["one_claim_per_post"]
    assert set(r["cold_start"]) == {"source"}  # --quick skips the bytecode mode
    for mode in r["cold_start"].values():
        message = mode["entry_points"]["ws_message"]
        assert message["modules_after_non_prompt_frames"]["openai"] is False
        assert message["modules_after_non_prompt_frames"]["fastapi"] is False
        assert message["modules_after_setup"]["openai"] is True  # setup warms the model on purpose
        assert mode["entry_points"]["ws_connect"]["status"] == 200  # the signed upgrade was accepted
    project = r["concurrency"]["project"]
    assert project["delivered"] == project["turns"] == 8
    assert project["history_problems"] == project["model_history_problems"] == []
    assert project["error_frames"] == project["failed_invocations"] == 0
    assert r["first_turn"][0]["replies_ok"]
    assert r["cost"]["aws_per_1000_minutes_usd"] > 0
