"""moto helpers: the sessions table from the shared definition, and frames posted to moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from voice_agent.table_schema import create_table_request, time_to_live_request

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ACCOUNT = "123456789012"
REGION = "us-east-1"
TABLE = "test-sessions"


def create_table(client: DynamoDBClient, name: str = TABLE) -> None:
    client.create_table(**create_table_request(name))
    client.update_time_to_live(**time_to_live_request(name))


@contextmanager
def moto_table(name: str = TABLE) -> Iterator[DynamoDBClient]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, name)
        yield client


def posted_frames(connection_id: str) -> list[dict[str, Any]]:
    """Frames moto's management API recorded for a connection (moto concatenates them)."""
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    data = apigatewaymanagementapi_backends[ACCOUNT][REGION].connections[connection_id].data
    text = data.decode() if isinstance(data, bytes) else str(data)
    decoder = json.JSONDecoder()
    frames: list[dict[str, Any]] = []
    pos = 0
    while pos < len(text):
        frame, pos = decoder.raw_decode(text, pos)
        frames.append(frame)
    return frames
