from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.aws import TABLE, moto_table
from tests.support.fakes import RecordingSender, ScriptedModel
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.log import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class RequestCounter:
    """Counts DynamoDB requests by operation, through botocore's event hooks (what AWS bills)."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.calls: list[str] = []
        client.meta.events.register("before-call.dynamodb.*", self._count)

    def _count(self, model: object, **_: object) -> None:
        self.calls.append(getattr(model, "name", "?"))

    def reset(self) -> None:
        self.calls.clear()

    def by_operation(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in self.calls:
            out[name] = out.get(name, 0) + 1
        return out


@pytest.fixture
def dynamodb() -> Iterator[DynamoDBClient]:
    with moto_table() as client:
        yield client


@pytest.fixture
def store(dynamodb: DynamoDBClient) -> DynamoSessionStore:
    return DynamoSessionStore(client=dynamodb, table_name=TABLE, retention_days=7)


@pytest.fixture
def requests(dynamodb: DynamoDBClient) -> RequestCounter:
    return RequestCounter(dynamodb)


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The runtime's JSON log lines, as CloudWatch would get them."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    std = logging.getLogger(logger.name)
    std.addHandler(handler)
    yield buffer
    std.removeHandler(handler)
