"""Each function's DynamoDB permissions are what its code does.

Every entry point runs against moto through the production wiring, down every path that reaches
the table (a setup, a setup retried, turns with and without a tool round, a barge-in, a language
switch, a hang-up; the socket closing; /voice and every /action), and botocore's event hooks record
the operations each one makes. The stack grants ``infra.permissions``: a call the code gains
without its grant fails here, and so does a grant no code path uses any more.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from infra.permissions import (
    CONNECT_STORE_ACTIONS,
    DISCONNECT_STORE_ACTIONS,
    MESSAGE_STORE_ACTIONS,
    RECORDS_STORE_ACTIONS,
    TIMERS_STORE_ACTIONS,
    WEBHOOK_STORE_ACTIONS,
)
from local.openai_server import OpenAICompatibleServer, Reply, ScriptedBrain, ToolCallReply, split_tokens
from tests.conftest import TEST_ENV
from tests.support.aws import create_table, posted_frames
from tests.support.events import FakeLambdaContext, connect_event, disconnect_event, message_event, relay_frame
from tests.support.fakes import sqs_event
from tests.support.faults import FaultInjector, dynamodb_error
from voice_agent import env_names as names
from voice_agent import wiring
from voice_agent.adapters import aws_clients
from voice_agent.call_tokens import derive_key, relay_url, token_for
from voice_agent.entry import record_builder, silence_timer, ws_connect, ws_disconnect, ws_message
from voice_agent.signatures import sign
from voice_agent.webhook.app import create_app

CALL = "CA00000000000000000000000000000007"


class OperationsByFunction:
    """The DynamoDB operations made while each function's handler runs (one at a time)."""

    def __init__(self) -> None:
        self.made: dict[str, set[str]] = {}
        self._current: str | None = None
        aws_clients.dynamodb().meta.events.register("before-call.dynamodb.*", self._record)

    def _record(self, model: object, **_: object) -> None:
        assert self._current is not None, "a DynamoDB call outside any function"
        self.made.setdefault(self._current, set()).add("dynamodb:" + str(getattr(model, "name", "?")))

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        self._current = function
        try:
            yield
        finally:
            self._current = None


@pytest.fixture
def brain() -> ScriptedBrain:
    return ScriptedBrain()


@pytest.fixture
def recorded(brain: ScriptedBrain, monkeypatch: pytest.MonkeyPatch) -> Iterator[OperationsByFunction]:
    with OpenAICompatibleServer(brain, ttft_s=0.01, token_interval_s=0.005) as llm, mock_aws():
        monkeypatch.setenv("LLM_PROVIDER", "openai")  # the scripted model speaks the OpenAI protocol
        monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
        monkeypatch.setenv("LLM_PROVIDER", "openai")  # the scripted brain speaks OpenAI's protocol
        wiring.reset()
        create_table(aws_clients.dynamodb())
        yield OperationsByFunction()


def send(connection_id: str, body: str) -> None:
    assert ws_message.handler(message_event(connection_id, body), FakeLambdaContext()) == {"statusCode": 200}


def prompt(text: str) -> str:
    return relay_frame("prompt", voicePrompt=text)


def post_action(client: TestClient, form: dict[str, str]) -> str:
    url = TEST_ENV["WEBHOOK_PUBLIC_URL"] + "/action"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(TEST_ENV["TWILIO_AUTH_TOKEN"], url, form),
    }
    response = client.post("/action", content=urlencode(form), headers=headers)
    assert response.status_code == 200, response.text
    return str(response.text)


def message_function_paths(brain: ScriptedBrain) -> None:
    setup = relay_frame("setup", callSid=CALL)
    send("c1", setup)
    # A retried setup write whose first answer was lost: the put's condition fails on this setup's
    # own item, and (with no item in the error) the store reads it back.
    lost = FaultInjector(lambda: dynamodb_error("ConditionalCheckFailedException")).attach(
        aws_clients.dynamodb(), "dynamodb.PutItem"
    )
    send("c1", setup)
    assert lost.injected == 1
    # A plain turn, a turn with a tool round, a language switch.
    brain.push("We open at nine.")
    send("c1", prompt("When do you open?"))
    lookup = ToolCallReply("lookup_order", {"order_id": "1001"})
    brain.push(Reply(tokens=split_tokens("Let me check."), tool_calls=[lookup]))
    brain.push("Your order has shipped.")
    send("c1", prompt("Where is order 1001?"))
    brain.push(Reply(tool_calls=[ToolCallReply("switch_language", {"language": "es-ES"})]), "Claro.")
    send("c1", prompt("Spanish, please."))
    # A barge-in on a long reply.
    brain.push(Reply(tokens=split_tokens("word " * 200), token_interval_s=0.02))
    before = len(posted_frames("c1"))
    worker = threading.Thread(target=send, args=("c1", prompt("Tell me everything.")))
    worker.start()
    deadline = time.monotonic() + 10
    while len(posted_frames("c1")) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    send("c1", relay_frame("interrupt", utteranceUntilInterrupt="word word", durationUntilInterruptMs="500"))
    worker.join(10)
    # The caller says goodbye: the agent ends the call and remembers it said so.
    brain.push(Reply(tool_calls=[ToolCallReply("end_call", {})]))
    send("c1", prompt("That's all, bye."))
    assert posted_frames("c1")[-1]["type"] == "end"


def test_each_function_makes_exactly_the_dynamodb_calls_the_stack_grants_it(
    recorded: OperationsByFunction, brain: ScriptedBrain
) -> None:
    with recorded.running("connect"):
        token = token_for(derive_key(TEST_ENV["TWILIO_AUTH_TOKEN"]), CALL)
        url = relay_url(TEST_ENV["RELAY_PUBLIC_URL"], CALL, token, 0)
        event = connect_event("c1", query=dict(parse_qsl(urlsplit(url).query)))
        event["headers"]["X-Twilio-Signature"] = sign(TEST_ENV["TWILIO_AUTH_TOKEN"], url)
        assert ws_connect.handler(event, FakeLambdaContext())["statusCode"] == 200
    with recorded.running("message"):
        message_function_paths(brain)
    with recorded.running("disconnect"):
        assert ws_disconnect.handler(disconnect_event("c1"), FakeLambdaContext()) == {"statusCode": 200}
    webhook = TestClient(create_app())
    form = {"CallSid": CALL, "AccountSid": "AC" + "0" * 32, "From": "+15551230001", "To": "+15551230002"}
    with recorded.running("webhook"):
        voice = webhook.post(
            "/voice",
            content=urlencode({**form, "CallStatus": "ringing", "Direction": "inbound"}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sign(
                    TEST_ENV["TWILIO_AUTH_TOKEN"],
                    TEST_ENV["WEBHOOK_PUBLIC_URL"] + "/voice",
                    {**form, "CallStatus": "ringing", "Direction": "inbound"},
                ),
            },
        )
        assert voice.status_code == 200
        assert "<ConversationRelay" in post_action(
            webhook, {**form, "CallStatus": "in-progress", "SessionId": "VX1", "SessionStatus": "failed"}
        )
        post_action(webhook, {**form, "CallStatus": "in-progress", "SessionId": "VX2", "SessionStatus": "ended"})
        handoff = json.dumps({"reasonCode": "caller-request", "reason": "asked"})
        post_action(
            webhook,
            {**form, "CallStatus": "in-progress", "SessionId": "VX3", "SessionStatus": "ended", "HandoffData": handoff},
        )
        post_action(webhook, {**form, "CallStatus": "completed", "SessionId": "VX4", "SessionStatus": "completed"})

    assert recorded.made == {
        "connect": set(CONNECT_STORE_ACTIONS),
        "message": set(MESSAGE_STORE_ACTIONS),
        "disconnect": set(DISCONNECT_STORE_ACTIONS),
        "webhook": set(WEBHOOK_STORE_ACTIONS),
    }


def connection_generation(recorded: OperationsByFunction, connection_id: str) -> int:
    with recorded.running("test"):
        item = aws_clients.dynamodb().get_item(
            TableName=TEST_ENV["SESSIONS_TABLE_NAME"], Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "CONN"}}
        )["Item"]
    return int(item["gen"]["N"])


def fire(timer: dict[str, object]) -> None:
    body = json.dumps({"call_sid": CALL, "connection_id": "c1", **timer})
    assert silence_timer.handler(sqs_event(body), FakeLambdaContext()) == {"batchItemFailures": []}


def test_the_timers_and_records_functions_make_exactly_the_calls_the_stack_grants_them(
    recorded: OperationsByFunction, brain: ScriptedBrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, s3, events = (boto3.client(n, region_name="us-east-1") for n in ("sqs", "s3", "events"))
    monkeypatch.setenv(names.TIMER_QUEUE_URL, sqs.create_queue(QueueName="timers")["QueueUrl"])
    monkeypatch.setenv(names.RECORD_QUEUE_URL, sqs.create_queue(QueueName="records")["QueueUrl"])
    monkeypatch.setenv(names.CALL_RECORDS_BUCKET, "records-bucket-test")
    monkeypatch.setenv(names.CALL_EVENTS_BUS, "calls-test")
    s3.create_bucket(Bucket="records-bucket-test")
    events.create_event_bus(Name="calls-test")
    wiring.reset_model()
    for factory in (wiring.timers, wiring.timer_scheduler, wiring.record_queue, wiring.turn_engine, wiring.relay):
        factory.cache_clear()
    with recorded.running("message"):
        send("c1", relay_frame("setup", callSid=CALL))
        brain.push(
            Reply(tool_calls=[ToolCallReply("collect_keys", {"prompt": "Key in your order number.", "count": 4})])
        )
        send("c1", prompt("My order number?"))
        send("c1", relay_frame("dtmf", digit="1"))
    asked = connection_generation(recorded, "c1")
    with recorded.running("timers"):
        fire({"kind": "keys", "gen": asked, "entry": asked - 1})  # the re-prompt
        # The entry ends with what came; the model looks the order up (a tool round) and answers.
        brain.push(Reply(tool_calls=[ToolCallReply("lookup_order", {"order_id": "1001"})]), "It has shipped.")
        fire({"kind": "keys", "gen": asked + 1, "entry": asked - 1, "step": 1})
        answered = connection_generation(recorded, "c1")
    with recorded.running("timers"):
        fire({"kind": "silence", "gen": answered, "step": 9})  # past the reminders: the goodbye
        fire({"kind": "hangup", "gen": answered + 1})
        fire({"kind": "watch", "deadline": 1})  # past the limit with the socket ending: look again
    with recorded.running("webhook"):
        webhook = TestClient(create_app())
        form = {"CallSid": CALL, "AccountSid": "AC" + "0" * 32, "SessionId": "VX9", "SessionStatus": "ended"}
        post_action(webhook, {**form, "CallStatus": "in-progress"})
    with recorded.running("records"):
        body = json.dumps({"call_sid": CALL, "outcome": "ended"})
        assert record_builder.handler(sqs_event(body), FakeLambdaContext()) == {"batchItemFailures": []}
    assert s3.list_objects_v2(Bucket="records-bucket-test")["KeyCount"] == 1
    recorded.made.pop("test")
    assert recorded.made == {
        "message": set(MESSAGE_STORE_ACTIONS) - {"dynamodb:GetItem"},  # no setup retried this time
        "timers": set(TIMERS_STORE_ACTIONS),
        "webhook": set(WEBHOOK_STORE_ACTIONS),
        "records": set(RECORDS_STORE_ACTIONS),
    }
