"""Logs are JSON, carry the call id, and hold no transcript text, phone numbers or secrets
unless LOG_SENSITIVE_DATA=true."""

from __future__ import annotations

import io
import json

import pytest
from moto import mock_aws

from local.bedrock_server import BedrockStandIn
from local.openai_server import OpenAICompatibleServer, ScriptedBrain
from tests.conftest import TEST_ENV
from tests.support.aws import create_table
from tests.support.events import FakeLambdaContext, connect_event, message_event, relay_frame
from voice_agent import wiring
from voice_agent.entry import ws_connect, ws_message
from voice_agent.signatures import sign

CALLER = "+18005550100"
SECRET_SPEECH = "my account password is hunter2"
REPLY = "I will never ask for your password."


@pytest.fixture(params=["bedrock", "openai"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run_call(monkeypatch: pytest.MonkeyPatch, provider: str) -> None:
    brain = ScriptedBrain()
    brain.push(REPLY)
    monkeypatch.setenv("LLM_PROVIDER", provider)
    with OpenAICompatibleServer(brain) as server, BedrockStandIn(brain) as bedrock, mock_aws():
        import boto3

        create_table(boto3.client("dynamodb", region_name="us-east-1"))
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock.endpoint_url)
        wiring.reset()
        ctx = FakeLambdaContext()
        signature = sign(TEST_ENV["TWILIO_AUTH_TOKEN"], TEST_ENV["RELAY_PUBLIC_URL"])
        ws_connect.handler(connect_event("c1", headers={"X-Twilio-Signature": signature}), ctx)
        for frame in (
            relay_frame("setup", **{"from": CALLER}),
            relay_frame("prompt", voicePrompt=SECRET_SPEECH),
            relay_frame("interrupt", utteranceUntilInterrupt="I will never"),
            relay_frame("error", description=f"Invalid message received, code: 64107, {SECRET_SPEECH}"),
            relay_frame("info", name="tokensPlayed", value=REPLY),
        ):
            ws_message.handler(message_event("c1", frame), ctx)


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_default_logs_hold_no_transcripts_numbers_or_secrets(
    json_log: io.StringIO, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    run_call(monkeypatch, provider)
    text = json_log.getvalue()
    records = lines(json_log)
    assert len(records) >= 6
    for forbidden in (SECRET_SPEECH, "hunter2", REPLY, "I will never", CALLER, TEST_ENV["TWILIO_AUTH_TOKEN"]):
        assert forbidden not in text, forbidden
    by_message = {r["message"]: r for r in records}
    assert by_message["session bound"]["from"] == "+*******0100"
    assert by_message["prompt"]["speech"] == {"chars": len(SECRET_SPEECH)}
    assert by_message["twilio reported an error"]["twilio_error"] == "64107"
    call_scoped = [r for r in records if r["message"] in ("session bound", "prompt", "turn finished", "interrupt")]
    assert call_scoped
    assert all(r.get("call_sid") == "CA00000000000000000000000000000001" for r in call_scoped)
    assert all(r.get("connection_id") == "c1" for r in call_scoped)
    # Powertools' Lambda context on every line of every entry point: request id, function, cold start.
    ctx = FakeLambdaContext()
    for record in records:
        assert record.get("function_request_id") == ctx.aws_request_id, record["message"]
        assert record.get("function_name") == ctx.function_name
        assert record.get("function_arn") == ctx.invoked_function_arn
        assert isinstance(record.get("cold_start"), bool)


def test_sensitive_logging_is_an_explicit_switch(
    json_log: io.StringIO, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    monkeypatch.setenv("LOG_SENSITIVE_DATA", "true")
    run_call(monkeypatch, provider)
    text = json_log.getvalue()
    assert SECRET_SPEECH in text
    assert CALLER in text


def test_a_refused_upgrade_logs_the_url_it_checked_and_the_header_names_not_their_values(
    json_log: io.StringIO,
) -> None:
    """When every call fails with 64102, this line says what Twilio sent and what it was checked against."""
    forged = sign("not-the-auth-token", TEST_ENV["RELAY_PUBLIC_URL"])
    event = connect_event("c1", headers={"X-Twilio-Signature": forged}, query={"probe": "1"})
    assert ws_connect.handler(event, FakeLambdaContext()) == {"statusCode": 403}
    (refused,) = (r for r in lines(json_log) if r["message"] == "websocket upgrade refused")
    assert refused["reason"] == "invalid signature"
    assert refused["checked_url"] == TEST_ENV["RELAY_PUBLIC_URL"]
    names = refused["header_names"]
    assert isinstance(names, list)
    assert "x-twilio-signature" in names
    assert names == sorted(names)
    assert refused["query_keys"] == ["probe"]
    assert forged not in json_log.getvalue()
    assert TEST_ENV["TWILIO_AUTH_TOKEN"] not in json_log.getvalue()
    unsigned = connect_event("c2")
    assert ws_connect.handler(unsigned, FakeLambdaContext()) == {"statusCode": 403}
    missing = [r for r in lines(json_log) if r["message"] == "websocket upgrade refused"][-1]
    assert missing["reason"] == "missing signature"
    assert isinstance(missing["header_names"], list)
    assert "x-twilio-signature" not in missing["header_names"]


def test_a_refused_webhook_logs_the_url_its_signature_had_to_be_over(json_log: io.StringIO) -> None:
    from fastapi.testclient import TestClient

    from voice_agent.webhook.app import create_app

    form = {"CallSid": "CA" + "1" * 32, "From": CALLER}
    forged = sign("not-the-auth-token", TEST_ENV["WEBHOOK_PUBLIC_URL"] + "/voice", form)
    response = TestClient(create_app()).post(
        "/voice?x=1",
        data=form,
        headers={"X-Twilio-Signature": forged},
    )
    assert response.status_code == 403
    (refused,) = (r for r in lines(json_log) if r["message"] == "webhook request refused")
    assert refused["checked_url"] == TEST_ENV["WEBHOOK_PUBLIC_URL"] + "/voice"  # no query: it may carry values
    assert CALLER not in json_log.getvalue()
