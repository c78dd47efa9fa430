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


# The authorizer context's key for the socket's call (``ws_connect.authorize``).
AUTHORIZED_CALL = "callSid"


def _authorized_call(event: Mapping[str, Any]) -> str | None:
    """The call the ``$connect`` authorizer accepted the socket for: API Gateway adds the context
    an authorizer returned to every later event of the connection (``requestContext.authorizer``)."""
    authorizer = (event.get("requestContext") or {}).get("authorizer")
    call_sid = authorizer.get(AUTHORIZED_CALL) if isinstance(authorizer, Mapping) else None
    return call_sid if isinstance(call_sid, str) and call_sid else None


def _maybe_connection_id(event: Mapping[str, Any]) -> str:
    connection_id = (event.get("requestContext") or {}).get("connectionId")
    return connection_id if isinstance(connection_id, str) else ""


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    """The ``$connect`` integration's event, or the ``REQUEST`` authorizer's (``method_arn`` set)."""

    connection_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    method_arn: str | None = None

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> ConnectEvent:
        headers = event.get("headers") or {}
        query = event.get("queryStringParameters") or {}
        method_arn = event.get("methodArn") if event.get("type") == "REQUEST" else None
        # The authorizer logs the connection id when AWS's authorizer input carries it (its
        # documented example is cut short there); it never refuses an upgrade for lacking it.
        authorizing = cls.is_authorization(event)
        connection_id = _connection_id(event) if not authorizing else _maybe_connection_id(event)
        return cls(
            connection_id=connection_id,
            headers={str(k): str(v) for k, v in headers.items()},
            query={str(k): str(v) for k, v in query.items()},
            method_arn=method_arn if isinstance(method_arn, str) and method_arn else None,
        )

    @staticmethod
    def is_authorization(event: Mapping[str, Any]) -> bool:
        return event.get("type") == "REQUEST" and "methodArn" in event


@dataclass(frozen=True, slots=True)
class MessageEvent:
    connection_id: str
    body: str | bytes | None
    call_sid: str | None = None  # the socket's call, as the $connect authorizer accepted it

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> MessageEvent:
        body = event.get("body")
        if isinstance(body, str) and event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(body, validate=True)
            except ValueError:
                body = None  # undecodable: the relay logs it as malformed
        return cls(connection_id=_connection_id(event), body=body, call_sid=_authorized_call(event))


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
