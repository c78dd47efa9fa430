"""The management-API sender: real boto3 client against moto, and botocore Stubber for the
errors moto never produces (GoneException, throttling)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.support.aws import posted_frames
from voice_agent import wiring
from voice_agent.adapters import aws_clients
from voice_agent.adapters.management_api import ManagementApiSender
from voice_agent.errors import ConnectionGoneError, SendError
from voice_agent.protocol.outbound import MAX_FRAME_BYTES, End, Text

ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


def test_frames_reach_the_connection_in_order() -> None:
    with mock_aws():
        sender = wiring.sender()
        sender.send("c1", Text("Hello", last=False))
        sender.send("c1", Text(" world", last=True))
        sender.send("c1", End(handoff_data='{"reasonCode":"x","reason":"y"}'))
        assert posted_frames("c1") == [
            {"type": "text", "token": "Hello", "last": False},
            {"type": "text", "token": " world", "last": True},
            {"type": "end", "handoffData": '{"reasonCode":"x","reason":"y"}'},
        ]


def test_an_oversized_message_is_split_into_frames_under_32kb() -> None:
    with mock_aws():
        client = boto3.client("apigatewaymanagementapi", endpoint_url=ENDPOINT, region_name="us-east-1")
        sizes: list[int] = []
        client.meta.events.register(
            "before-call.apigatewaymanagementapi.PostToConnection",
            lambda params, **_: sizes.append(len(params["body"])),
        )
        ManagementApiSender(client).send("c1", Text("word " * 20_000, last=True))
        frames = posted_frames("c1")
        assert len(frames) == len(sizes) == 4
        assert max(sizes) <= MAX_FRAME_BYTES
        assert "".join(f["token"] for f in frames) == "word " * 20_000
        assert [f["last"] for f in frames] == [False, False, False, True]


def test_one_client_per_execution_environment_with_short_timeouts() -> None:
    assert aws_clients.management_api(ENDPOINT) is aws_clients.management_api(ENDPOINT)
    config: Any = aws_clients.management_api(ENDPOINT).meta.config
    assert config.connect_timeout <= 2
    assert config.read_timeout <= 3
    assert config.retries["total_max_attempts"] <= 3
    assert aws_clients.management_api(ENDPOINT).meta.endpoint_url == ENDPOINT


def test_concurrent_first_uses_share_one_client() -> None:
    # The local stand-in runs invocations on threads: the first few can ask for a client at once.
    # They must all get the one client (what a test's fault injection or a warm pool relies on).
    from concurrent.futures import ThreadPoolExecutor

    aws_clients.reset_clients()
    with ThreadPoolExecutor(8) as pool:
        managers = list(pool.map(lambda _: aws_clients.management_api(ENDPOINT), range(16)))
        databases = list(pool.map(lambda _: aws_clients.dynamodb(), range(16)))
    assert len({id(c) for c in managers}) == 1
    assert len({id(c) for c in databases}) == 1


def test_gone_is_final_and_never_retried() -> None:
    client = boto3.client("apigatewaymanagementapi", endpoint_url=ENDPOINT, region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("post_to_connection", service_error_code="GoneException", http_status_code=410)
        with pytest.raises(ConnectionGoneError):
            ManagementApiSender(client).send("c1", Text("hi"))
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status"),
    [("LimitExceededException", 429), ("ForbiddenException", 403), ("PayloadTooLargeException", 413)],
)
def test_other_failures_are_send_errors(code: str, status: int) -> None:
    client = boto3.client("apigatewaymanagementapi", endpoint_url=ENDPOINT, region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("post_to_connection", service_error_code=code, http_status_code=status)
        with pytest.raises(SendError):
            ManagementApiSender(client).send("c1", Text("hi"))


def test_an_unreachable_endpoint_is_a_send_error_within_the_timeouts() -> None:
    import time

    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url="http://127.0.0.1:9/prod",
        region_name="us-east-1",
        config=aws_clients.MANAGEMENT_API_CONFIG,
    )
    started = time.monotonic()
    with pytest.raises(SendError):
        ManagementApiSender(client).send("c1", Text("hi"))
    assert time.monotonic() - started < 10
