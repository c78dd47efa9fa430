"""Faults behind the agent, injected below botocore's retry logic or in the model server:
the caller hears something sensible and the call goes on (or ends cleanly)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from tests.support.aws import TABLE
from tests.support.fakes import RecordingSender, ScriptedModel, ScriptedReply, words
from tests.support.faults import FaultInjector, dynamodb_error, rest_json_error
from voice_agent.adapters import aws_clients
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.adapters.management_api import ManagementApiSender
from voice_agent.agent.config import AGENT, AgentConfig
from voice_agent.core.budget import Budget, SystemClock
from voice_agent.core.turn_engine import TurnEngine
from voice_agent.errors import SendError
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.outbound import Text
from voice_agent.wiring import tool_registry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
REPLY = "It opens at nine, and it closes at six in the evening, every weekday."


def engine(store: DynamoSessionStore, sender: object, model: ScriptedModel, agent: AgentConfig = AGENT) -> TurnEngine:
    return TurnEngine(store=store, sender=sender, model=lambda: model, agent=agent, tools=tool_registry())  # type: ignore[arg-type]


def retrying_store(dynamodb: DynamoDBClient) -> tuple[DynamoSessionStore, DynamoDBClient]:
    # The production client configuration (standard retries, short timeouts) against moto.
    client = boto3.client("dynamodb", region_name="us-east-1", config=aws_clients.DYNAMODB_CONFIG)
    return DynamoSessionStore(client=client, table_name=TABLE, retention_days=1), client


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"]
)
def test_dynamodb_throttling_is_retried_within_the_turn(
    dynamodb: DynamoDBClient, sender: RecordingSender, model: ScriptedModel, code: str
) -> None:
    store, client = retrying_store(dynamodb)
    store.bind_connection("c1", Setup(session_id="VX1", call_sid="CA1"))
    status = 500 if code == "InternalServerError" else 400
    fault = FaultInjector(lambda: dynamodb_error(code, status), times=2).attach(client, "dynamodb.UpdateItem")
    model.say(REPLY)
    outcome = engine(store, sender, model).run_prompt("c1", "Hours?", Budget.start(SystemClock(), 25))
    assert outcome.status == "completed"
    assert sender.spoken("c1") == REPLY
    assert fault.injected == 2
    assert fault.attempts >= 3  # the generation update succeeded on its third attempt


def test_dynamodb_throttled_for_the_whole_turn_is_an_apology(
    dynamodb: DynamoDBClient, sender: RecordingSender, model: ScriptedModel
) -> None:
    store, client = retrying_store(dynamodb)
    store.bind_connection("c1", Setup(session_id="VX1", call_sid="CA1"))
    FaultInjector(lambda: dynamodb_error("ProvisionedThroughputExceededException"), times=None).attach(
        client, "dynamodb"
    )
    started = time.monotonic()
    outcome = engine(store, sender, model).run_prompt("c1", "Hours?", Budget.start(SystemClock(), 25))
    assert outcome.status == "store_error"
    assert sender.texts("c1") == [Text(AGENT.lines.apology, last=True)]
    assert time.monotonic() - started < 10  # bounded retries, well inside the 29 s integration limit


def test_a_conditional_check_failure_from_a_race_is_not_an_error(
    dynamodb: DynamoDBClient, sender: RecordingSender, model: ScriptedModel
) -> None:
    store, _ = retrying_store(dynamodb)
    store.bind_connection("c1", Setup(session_id="VX1", call_sid="CA1"))
    # Another Lambda takes the generation between this turn's start and its first phrase.
    model.replies.append(ScriptedReply(tokens=words(REPLY), first_delay_s=0.05))
    turn = engine(store, sender, model)

    def newer_prompt() -> None:
        time.sleep(0.02)
        store.start_turn("c1")

    thread = threading.Thread(target=newer_prompt)
    thread.start()
    outcome = turn.run_prompt("c1", "Hours?", Budget.start(SystemClock(), 25))
    thread.join()
    assert outcome.status == "interrupted"
    assert sender.messages == []  # a superseded reply says nothing, not even its first word


def management_client() -> object:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        config=aws_clients.MANAGEMENT_API_CONFIG,
    )


def test_gone_mid_reply_stops_and_is_not_retried(
    dynamodb: DynamoDBClient, store: DynamoSessionStore, model: ScriptedModel
) -> None:
    client = management_client()
    posts = FaultInjector(lambda: rest_json_error("GoneException", 410), times=None)
    client.meta.events.register_first("before-send.apigatewaymanagementapi.PostToConnection", posts)  # type: ignore[attr-defined]
    store.bind_connection("c1", Setup(session_id="VX1", call_sid="CA1"))
    model.say(REPLY)
    outcome = engine(store, ManagementApiSender(client), model).run_prompt(  # type: ignore[arg-type]
        "c1", "Hours?", Budget.start(SystemClock(), 25)
    )
    assert outcome.status == "gone"
    assert posts.attempts == 1  # a 410 is final: no retry, no further phrase
    assert model.closed == 1
    assert store.start_turn("c1") is None  # the connection is marked gone


def test_throttled_posts_are_retried_and_delivered() -> None:
    with mock_aws():
        client = management_client()
        throttle = FaultInjector(lambda: rest_json_error("LimitExceededException", 429), times=1)
        client.meta.events.register_first("before-send.apigatewaymanagementapi.PostToConnection", throttle)  # type: ignore[attr-defined]
        ManagementApiSender(client).send("c1", Text("hello"))  # type: ignore[arg-type]
        assert (throttle.injected, throttle.attempts) == (1, 2)


def test_posts_throttled_beyond_the_retry_cap_are_a_send_error() -> None:
    client = management_client()
    throttle = FaultInjector(lambda: rest_json_error("LimitExceededException", 429), times=None)
    client.meta.events.register_first("before-send.apigatewaymanagementapi.PostToConnection", throttle)  # type: ignore[attr-defined]
    with pytest.raises(SendError):
        ManagementApiSender(client).send("c1", Text("hello"))  # type: ignore[arg-type]
    assert throttle.attempts == aws_clients.MANAGEMENT_API_CONFIG.retries["total_max_attempts"]  # type: ignore[attr-defined]


def test_a_post_that_never_answers_times_out() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_hold, daemon=True)
    thread.start()
    try:
        client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}/prod",
            region_name="us-east-1",
            config=aws_clients.MANAGEMENT_API_CONFIG,
        )
        started = time.monotonic()
        with pytest.raises(SendError):
            ManagementApiSender(client).send("c1", Text("hello"))
        elapsed = time.monotonic() - started
        assert 1.0 < elapsed < 10.0  # read timeout x attempts, not botocore's default 60 s
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()
