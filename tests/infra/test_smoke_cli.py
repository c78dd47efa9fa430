"""`make smoke`'s AWS reads, offline (botocore Stubber), and its set-up errors. The smoke itself
runs against the local stack in tests/e2e/test_smoke.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra import outputs
from infra.cli import smoke

GROUP = "/aws/lambda/VoiceAgent-ConnectFunction"
PATTERN = '{ $.message = "websocket upgrade refused" }'


def refusal(checked_url: str, names: list[str], timestamp: int) -> dict[str, Any]:
    line = {"level": "WARNING", "message": smoke.REFUSAL_LINE, "checked_url": checked_url, "header_names": names}
    return {"message": json.dumps(line), "timestamp": timestamp, "logStreamName": "s", "eventId": str(timestamp)}


def test_the_refusal_is_read_from_the_connect_log_group_looking_again_while_logs_arrive() -> None:
    client = boto3.client("logs")
    sleeps: list[float] = []
    with Stubber(client) as stub:
        request = {"logGroupName": GROUP, "startTime": 1_000, "filterPattern": PATTERN}
        stub.add_response("filter_log_events", {"events": []}, request)  # not ingested yet
        stub.add_response(
            "filter_log_events",
            {"events": [refusal("wss://a/prod", ["host"], 2_000)], "nextToken": "n1"},
            request,
        )
        newest = refusal("wss://a/prod", ["host", "x-twilio-signature"], 3_000)
        stub.add_response("filter_log_events", {"events": [newest]}, {**request, "nextToken": "n1"})
        found = smoke.CloudWatchRefusals(lambda: client, GROUP, wait_s=10, poll_s=2, sleep=sleeps.append).latest(1_000)
        stub.assert_no_pending_responses()
    assert found is not None
    assert found["header_names"] == ["host", "x-twilio-signature"]
    assert sleeps == [2]


def test_the_refusal_lookup_is_bounded_and_says_why_it_found_nothing() -> None:
    client = boto3.client("logs")
    sleeps: list[float] = []
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_response("filter_log_events", {"events": [{"message": "not json", "timestamp": 1}]})
        refusals = smoke.CloudWatchRefusals(lambda: client, GROUP, wait_s=4, poll_s=2, sleep=sleeps.append)
        assert refusals.latest(0) is None
        stub.assert_no_pending_responses()
    assert sleeps == [2, 2]  # three looks in all, then it gives up
    with Stubber(client) as stub:
        stub.add_client_error("filter_log_events", "AccessDeniedException", http_status_code=400)
        denied = smoke.CloudWatchRefusals(lambda: client, GROUP, wait_s=0, sleep=sleeps.append)
        assert denied.latest(0) is None
    assert denied.error == f"could not read {GROUP} (AccessDeniedException)"


def test_refusal_hints_name_the_url_checked_and_a_missing_signature_header() -> None:
    class One:
        def latest(self, since_ms: int) -> dict[str, Any]:
            return {"checked_url": "wss://a/prod", "reason": "missing signature", "header_names": ["host", "upgrade"]}

    hints = smoke._refusal_hints(One(), 0)
    assert hints == [
        "$connect checked against: wss://a/prod (reason: missing signature)",
        "$connect saw the headers: host, upgrade (X-Twilio-Signature MISSING: it did not reach $connect)",
    ]
    assert "make logs FN=connect" in smoke._refusal_hints(None, 0)[0]


def test_the_call_record_is_found_by_its_call_sid_across_pages_and_looked_for_again() -> None:
    s3 = boto3.client("s3")
    sleeps: list[float] = []
    with Stubber(s3) as stub:
        stub.add_response("list_objects_v2", {"Contents": [], "IsTruncated": False}, {"Bucket": "b"})
        stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": "calls/CAother.json"}], "IsTruncated": True, "NextContinuationToken": "t"},
            {"Bucket": "b"},
        )
        stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": "2026/12/02/CA123.json"}], "IsTruncated": False},
            {"Bucket": "b", "ContinuationToken": "t"},
        )
        key = smoke.find_call_record(s3, "b", "CA123", timeout_s=3, poll_s=3, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert key == "2026/12/02/CA123.json"
    assert sleeps == [3]


def test_the_record_search_never_lists_more_than_its_page_limit() -> None:
    s3 = boto3.client("s3")
    with Stubber(s3) as stub:
        for n in range(smoke.MAX_RECORD_PAGES):
            page = {"Contents": [{"Key": f"k{n}"}], "IsTruncated": True, "NextContinuationToken": f"t{n}"}
            stub.add_response("list_objects_v2", page)
        assert smoke.find_call_record(s3, "b", "CA123", timeout_s=0, sleep=lambda _: None) is None
        stub.assert_no_pending_responses()


def write_outputs(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "cdk-outputs.json"
    path.write_text(json.dumps({"VoiceAgent": values}))
    return path


def test_no_auth_token_or_no_outputs_is_a_set_up_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_outputs(tmp_path, WebhookVoiceUrl="https://h/voice", RelayUrl="wss://r/prod")
    assert smoke.main(["--stack-outputs", str(path)], env={}) == 2
    assert "set TWILIO_AUTH_TOKEN" in capsys.readouterr().err
    assert smoke.main(["--stack-outputs", str(tmp_path / "missing.json")], env={"TWILIO_AUTH_TOKEN": "t"}) == 2
    assert "run `make deploy` first" in capsys.readouterr().err
    no_relay = write_outputs(tmp_path, WebhookVoiceUrl="https://h/voice")
    assert smoke.main(["--stack-outputs", str(no_relay)], env={"TWILIO_AUTH_TOKEN": "t"}) == 2
    assert "no RelayUrl" in capsys.readouterr().err


def test_the_target_comes_from_the_stack_outputs() -> None:
    target = smoke.Target.from_outputs(
        "VoiceAgent",
        {
            outputs.WEBHOOK_VOICE_URL: "https://h.example.com/voice",
            outputs.RELAY_URL: "wss://r.example.com/prod",
            outputs.CONNECT_LOG_GROUP: GROUP,
        },
    )
    assert target.webhook_base_url == "https://h.example.com"  # older stacks had no WebhookBaseUrl
    assert target.connect_log_group == GROUP
    assert target.records_bucket is None
    assert isinstance(smoke._default_refusals(target), smoke.CloudWatchRefusals)


def test_the_calls_notes_keep_no_numbers_and_no_handoff_reasons() -> None:
    quiet = smoke._Quiet()
    quiet.note("Call CA1 from +15551234567 to +15557654321")
    quiet.note('session 1 ended: the agent ended the session (handoffData {"reason": "caller said hunter2"})')
    quiet.agent_line("Agent", "anything the agent said")
    assert quiet.notes == ["Call CA1 from +*******4567 to +*******4321", "session 1 ended: the agent ended the session"]


def test_the_record_search_looks_under_the_days_the_stack_writes_to() -> None:
    """The stack writes calls/<day the call started, UTC>/<CallSid>.json: the smoke call looks under
    today's prefix and yesterday's (a call placed just after midnight started the day before)."""
    from voice_agent.adapters.record_sink import object_key

    assert smoke.record_prefixes(1_796_169_600.0) == ("calls/2026-12-02/", "calls/2026-12-01/")
    key = object_key({"callSid": "CA123", "startedAt": "2026-12-01T23:59:58.000Z"})
    assert any(key.startswith(p) for p in smoke.record_prefixes(1_796_169_600.0))
    s3 = boto3.client("s3")
    with Stubber(s3) as stub:
        stub.add_response("list_objects_v2", {"Contents": [], "IsTruncated": False}, {"Bucket": "b", "Prefix": "p1/"})
        stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": "p2/CA123.json"}], "IsTruncated": False},
            {"Bucket": "b", "Prefix": "p2/"},
        )
        found = smoke.find_call_record(s3, "b", "CA123", timeout_s=0, sleep=lambda _: None, prefixes=("p1/", "p2/"))
        stub.assert_no_pending_responses()
    assert found == "p2/CA123.json"
