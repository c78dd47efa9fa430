"""API Gateway WebSocket events, as typed values (the only place that reads the event dicts)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def remaining_ms(context: object) -> int | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return int(getter()) if callable(getter) else None


def _connection_id(event: Mapping[str, Any]) -> str:
    connection_id = (event.get("requestContext") or {}).get("connectionId")
    if not isinstance(connection_id, str) or not connection_id:
        raise ValueError("event has no requestContext.connectionId")
    return connection_id


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    connection_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> ConnectEvent:
        headers = event.get("headers") or {}
        query = event.get("queryStringParameters") or {}
        return cls(
            connection_id=_connection_id(event),
            headers={str(k): str(v) for k, v in headers.items()},
            query={str(k): str(v) for k, v in query.items()},
        )


@dataclass(frozen=True, slots=True)
class MessageEvent:
    connection_id: str
    body: str | bytes | None

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> MessageEvent:
        body = event.get("body")
        if isinstance(body, str) and event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(body, validate=True)
            except ValueError:
                body = None  # undecodable: the relay logs it as malformed
        return cls(connection_id=_connection_id(event), body=body)


@dataclass(frozen=True, slots=True)
class DisconnectEvent:
    connection_id: str
    status_code: int | None = None
    reason: str | None = None

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> DisconnectEvent:
        ctx = event.get("requestContext") or {}
        code = ctx.get("disconnectStatusCode")
        reason = ctx.get("disconnectReason")
        return cls(
            connection_id=_connection_id(event),
            status_code=code if isinstance(code, int) else None,
            reason=reason if isinstance(reason, str) else None,
        )
