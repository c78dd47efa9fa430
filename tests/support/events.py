"""API Gateway events and ConversationRelay frames from the checked-in JSON fixtures."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent.parent / "fixtures"


@cache
def _load(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / path).read_text())
    return data


def relay_message(fixture: str, /, **overrides: Any) -> dict[str, Any]:
    message = copy.deepcopy(_load(f"relay/{fixture}.json"))
    message.update(overrides)
    return message


def relay_frame(fixture: str, /, **overrides: Any) -> str:
    return json.dumps(relay_message(fixture, **overrides))


def connect_event(
    connection_id: str, headers: dict[str, str] | None = None, query: dict[str, str] | None = None
) -> dict[str, Any]:
    event = copy.deepcopy(_load("events/connect.json"))
    event["requestContext"]["connectionId"] = connection_id
    event["headers"].pop("X-Twilio-Signature")
    event["headers"].update(headers or {})
    if query:
        event["queryStringParameters"] = query
    return event


def message_event(connection_id: str, body: str | None) -> dict[str, Any]:
    event = copy.deepcopy(_load("events/message.json"))
    event["requestContext"]["connectionId"] = connection_id
    event["body"] = body
    return event


def disconnect_event(connection_id: str, status_code: int = 1000) -> dict[str, Any]:
    event = copy.deepcopy(_load("events/disconnect.json"))
    event["requestContext"]["connectionId"] = connection_id
    event["requestContext"]["disconnectStatusCode"] = status_code
    return event


class FakeLambdaContext:
    def __init__(self, remaining_ms: int = 29_000) -> None:
        self.remaining_ms = remaining_ms
        self.aws_request_id = "00000000-0000-0000-0000-000000000000"
        self.function_name = "test-function"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
