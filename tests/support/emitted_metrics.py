"""Which CloudWatch metrics the runtime really emits, found by running the code that emits them
(not by reading the names module): every turn outcome and counted frame through ``telemetry``, and
every webhook callback that counts one through the webhook app. Embedded Metric Format lines are
read from stdout, as CloudWatch reads them from the function's logs."""

from __future__ import annotations

import contextlib
import io
import json
from typing import cast
from urllib.parse import urlencode

import boto3
from fastapi.testclient import TestClient
from moto import mock_aws

from tests.conftest import TEST_ENV
from tests.support.aws import TABLE, create_table
from tests.support.fakes import sqs_event
from voice_agent import telemetry, wiring
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT
from voice_agent.core.call_record import RecordProducer
from voice_agent.core.fallback import Fallback
from voice_agent.core.model import TokenUsage
from voice_agent.core.relay import HandledFrame
from voice_agent.core.silence import TimerHandler
from voice_agent.core.turn_states import TurnOutcome, TurnStatus
from voice_agent.entry import record_builder, silence_timer
from voice_agent.errors import RecordError
from voice_agent.signatures import sign
from voice_agent.webhook.app import Dependencies, create_app

CALL = "CA" + "7" * 32


def emitted_metric_names() -> set[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for status in TurnStatus:
            outcome = TurnOutcome(
                status=status, posts=3, time_to_first_phrase_s=0.2, duration_s=1.0, tool_calls=1, detail="handoff"
            )
            telemetry.record_frame(HandledFrame(kind="prompt", outcome=outcome))
        telemetry.record_frame(HandledFrame(kind="interrupt"))
        telemetry.record_frame(HandledFrame(kind="setup", ignored=True, refused=True))
        telemetry.record_frame(HandledFrame(kind="configUpdated", counted="ConfigUpdates"))
        # What the model chain reports, through the callbacks wiring hands the chain and adapters.
        wiring._record_fallback(Fallback(failed="bedrock:a", next="openai:b", reason="throttled"))
        wiring._record_usage("bedrock:a", TokenUsage(input_tokens=10, output_tokens=5))
        _webhook_callbacks()
        _after_the_call()
    names: set[str] = set()
    for line in out.getvalue().splitlines():
        if '"_aws"' in line:
            for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                names.update(m["Name"] for m in directive["Metrics"])
    return names


def _webhook_callbacks() -> None:
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_table(db)
        store = DynamoSessionStore(client=db, table_name=TABLE, retention_days=1)
        client = TestClient(create_app(Dependencies(store=lambda: store, agent=lambda: AGENT)))
        base, token = TEST_ENV["WEBHOOK_PUBLIC_URL"], TEST_ENV["TWILIO_AUTH_TOKEN"]

        def post(path: str, form: dict[str, str], signed: bool = True) -> None:
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if signed:
                headers["X-Twilio-Signature"] = sign(token, f"{base}{path}", form)
            client.post(path, content=urlencode(form), headers=headers)

        call = {"CallSid": CALL, "CallStatus": "in-progress"}
        post("/voice", {**call, "From": "+15550000001"}, signed=False)  # refused signature
        post("/action", {**call, "SessionId": "VX1", "SessionStatus": "failed", "ErrorCode": "64105"})
        post("/action", {**call, "SessionId": "VX2", "SessionStatus": "ended", "HandoffData": '{"reasonCode":"x"}'})
        post("/dial-status", {**call, "DialCallStatus": "no-answer"})
        for session in ("VX3", "VX4"):  # a configuration Twilio refuses twice: a configuration error
            post("/action", {**call, "SessionId": session, "SessionStatus": "failed", "ErrorCode": "64101"})


class _Fired:
    """A timer handler that reports each result once, as the real one would have fired them."""

    def __init__(self, results: list[str]) -> None:
        self._results = results

    def fire(self, timer: object, budget: object) -> str:
        return self._results.pop(0)


class _Producer:
    def __init__(self, fail: bool) -> None:
        self._fail = fail

    def produce(self, request: object) -> str:
        if self._fail:
            raise RecordError("injected")
        return "recorded"


def _after_the_call() -> None:
    """The timers and records functions' entry points, as their queues invoke them: each result
    that counts, and a record made and one failed."""
    results = ["reminded", "silence_goodbye", "time_limit", "cut_off", "stale"]
    timer = json.dumps({"kind": "silence", "call_sid": CALL, "connection_id": "c1", "gen": 1})
    silence_timer.handler(sqs_event(*[timer] * len(results)), None, timers=cast(TimerHandler, _Fired(results)))
    request = json.dumps({"call_sid": CALL})
    for fail in (False, True):
        record_builder.handler(sqs_event(request), None, producer=cast(RecordProducer, _Producer(fail)))
