"""`make smoke` against the local stack, through the same code path as against AWS: only the URLs
in cdk-outputs.json and the credentials differ (and where the $connect log lines are read)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from infra import outputs
from infra.cli import smoke
from local.demo_model import ABOUT, HOURS
from local.openai_server import Reply
from local.stack import LocalStack
from tests.e2e.conftest import AUTH_TOKEN
from tests.support.local_calls import JsonLogCapture, captured_logs
from voice_agent.adapters.record_sink import object_key

FAST = ["--greeting-seconds", "0.3", "--reply-timeout", "10"]


@pytest.fixture
def outputs_file(stack: LocalStack, tmp_path: Path) -> Path:
    """cdk-outputs.json as `make deploy` writes it, pointing at the local stack."""
    assert stack.urls.voice is not None and stack.urls.webhook is not None
    values = {
        outputs.WEBHOOK_VOICE_URL: stack.urls.voice,
        outputs.WEBHOOK_BASE_URL: stack.urls.webhook,
        outputs.RELAY_URL: stack.urls.relay,
    }
    path = tmp_path / "cdk-outputs.json"
    path.write_text(json.dumps({"VoiceAgentLocal": values}))
    return path


@pytest.fixture
def logs() -> Iterator[JsonLogCapture]:
    with captured_logs() as capture:
        yield capture


class LoggedRefusals:
    """The $connect refusal lines, read from the handlers' JSON logs as CloudWatch would hold them."""

    def __init__(self, capture: JsonLogCapture) -> None:
        self.capture = capture

    def latest(self, since_ms: int) -> Mapping[str, Any] | None:
        lines = [r for r in self.capture.records() if r.get("message") == smoke.REFUSAL_LINE]
        return lines[-1] if lines else None


class CallsBucket:
    """The call-records bucket, as the local stack fills it: each record the records function wrote
    into the stack's records folder is an object under the key the S3 sink gives it (``None``: an
    empty bucket)."""

    def __init__(self, records_dir: Path | None) -> None:
        self.records_dir = records_dir

    def list_objects_v2(self, **request: Any) -> dict[str, Any]:
        assert set(request) <= {"Bucket", "Prefix"} and request["Bucket"] == "calls-bucket"
        found = self.records_dir.glob("CA*.json") if self.records_dir is not None else []
        keys = sorted(object_key(json.loads(path.read_text(encoding="utf-8"))) for path in found)
        keys = [k for k in keys if k.startswith(request.get("Prefix", ""))]
        return {"Contents": [{"Key": k} for k in keys], "IsTruncated": False}


def run(
    capsys: pytest.CaptureFixture[str], outputs_file: Path, *args: str, token: str = AUTH_TOKEN, **kw: Any
) -> tuple[int, str]:
    code = smoke.main(["--stack-outputs", str(outputs_file), *FAST, *args], env={"TWILIO_AUTH_TOKEN": token}, **kw)
    return code, capsys.readouterr().out


def test_smoke_passes_against_the_local_stack(capsys: pytest.CaptureFixture[str], outputs_file: Path) -> None:
    code, out = run(capsys, outputs_file)
    assert code == 0, out
    lines = out.splitlines()
    for check in ("signed /voice", "unsigned /voice", "signed upgrade", "unsigned upgrade", "call CA"):
        assert any(line.startswith(f"  PASS  {check}") for line in lines), (check, out)
    assert "  SKIP  call record: not deployed by this stack version (no CallRecordsBucketName output)" in lines
    assert "greeting, 3 of 3 replies, barge-in, hang-up, /action 200" in out
    (timing,) = (line for line in lines if line.startswith("  time to first text:"))
    assert timing.count(" ms") == 3
    assert lines[-1].startswith("PASSED, 1 skipped in ")
    # Never the token, never what was said.
    assert AUTH_TOKEN not in out
    for said in (smoke.FIRST_PROMPT, smoke.BARGE_IN_PROMPT, ABOUT[:30], "Hello!"):
        assert said not in out


def test_an_upgrade_signed_over_another_url_fails_with_both_urls_and_the_headers_seen(
    capsys: pytest.CaptureFixture[str], outputs_file: Path, stack: LocalStack, logs: JsonLogCapture
) -> None:
    other = stack.urls.relay + "/"
    code, out = run(capsys, outputs_file, "--sign-upgrade-over", other, refusals=LoggedRefusals(logs))
    assert code == 1, out
    # the TwiML's URL names the probe call; its token is never printed
    assert f"  FAIL  signed upgrade: {stack.urls.relay}?callSid=CA" in out
    assert "&callToken=…&session=0 refused: HTTP 403" in out
    assert f"signed over: {other} (NOT the TwiML's url {stack.urls.relay}?callSid=" in out
    assert not re.search(r"callToken=[A-Za-z0-9_-]", out)
    assert f"$connect checked against: {stack.urls.relay} (reason: invalid signature)" in out
    (seen,) = (line for line in out.splitlines() if "$connect saw the headers:" in line)
    assert "x-twilio-signature" in seen
    assert "(X-Twilio-Signature present)" in seen
    assert "  SKIP  call: not run" in out
    assert out.splitlines()[-1].startswith("FAILED (1 of 6 checks)")


def test_a_webhook_that_refuses_the_signature_fails_the_smoke(
    capsys: pytest.CaptureFixture[str], outputs_file: Path, stack: LocalStack
) -> None:
    code, out = run(capsys, outputs_file, token="not-the-auth-token")
    assert code == 1, out
    assert f"  FAIL  signed /voice: refused with HTTP 403; signed over {stack.urls.voice}" in out
    assert "TwilioAuthTokenSecretArn" in out
    assert "  SKIP  signed upgrade: not run" in out
    assert "not-the-auth-token" not in out


def test_no_reply_fails_the_smoke_with_what_to_check(
    capsys: pytest.CaptureFixture[str],
    outputs_file: Path,
    stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert stack.brain is not None
    monkeypatch.setattr(stack.brain, "reply", lambda request: Reply(fault="stall"))  # the model never answers
    code, out = run(capsys, outputs_file, "--reply-timeout", "1.5")
    assert code == 1, out
    assert "  FAIL  call CA" in out
    assert "check: turn 1: no reply within 1.5 s of the prompt" in out
    assert "OpenAiApiKeySecretArn" in out
    assert "time to first text: turn 1 none" in out


def test_a_reply_that_is_the_apology_line_fails_the_smoke(
    capsys: pytest.CaptureFixture[str],
    outputs_file: Path,
    stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert stack.brain is not None
    monkeypatch.setattr(stack.brain, "reply", lambda request: Reply(fault="status", status=401))  # a wrong key
    code, out = run(capsys, outputs_file)
    assert code == 1, out
    assert "check: turn 1: the agent answered with its apology line: the model request failed" in out


def test_the_call_record_is_checked_once_the_stack_names_its_bucket(
    capsys: pytest.CaptureFixture[str], outputs_file: Path, stack: LocalStack
) -> None:
    data = json.loads(outputs_file.read_text())
    data["VoiceAgentLocal"][outputs.CALL_RECORDS_BUCKET] = "calls-bucket"
    outputs_file.write_text(json.dumps(data))
    code, out = run(capsys, outputs_file, s3=lambda: CallsBucket(stack.urls.records_dir))
    assert code == 0, out
    (call,) = (line for line in out.splitlines() if line.startswith("  PASS  call CA"))
    call_sid = call.split()[2].rstrip(":")
    (passed,) = (line for line in out.splitlines() if line.startswith("  PASS  call record: "))
    assert passed.startswith("  PASS  call record: s3://calls-bucket/calls/20") and passed.endswith(f"/{call_sid}.json")
    # No record for this call: the check fails and says where it looked.
    code, out = run(capsys, outputs_file, "--record-timeout", "0", s3=lambda: CallsBucket(None))
    assert code == 1
    assert "  FAIL  call record: no object for CA" in out
    assert "in s3://calls-bucket within 0 s" in out
    assert HOURS[:20] not in out
