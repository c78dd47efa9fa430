"""The events API Gateway WebSocket hands a Lambda, and the context object it runs with, shaped as
the real service shapes them (the stand-in in ``apigw_ws.py`` builds every invocation from these).

Sources for the shapes: ``docs/architecture.md``, "API Gateway limits the design depends on", and
AWS's WebSocket API event reference linked there.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.websockets import WebSocket

from local.servers import LOOPBACK

ACCOUNT_ID: Final = "000000000000"
REGION: Final = "us-east-1"


@dataclass(frozen=True, slots=True)
class Stage:
    """What every event of one stage carries."""

    name: str
    api_id: str
    port: int


class LocalLambdaContext:
    """The parts of the Lambda context object the runtime reads."""

    def __init__(self, *, function_name: str, timeout_s: float, request_id: str) -> None:
        self._deadline = time.monotonic() + timeout_s
        self.aws_request_id = request_id
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


_ID_ALPHABET: Final = string.ascii_letters + string.digits


def new_id() -> str:
    """An id shaped like API Gateway's connection and request ids (e.g. ``ZzOnPdzSIAMCJqQ=``)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(15)) + "="


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch_s * 1000) % 1000:03d}Z"


def _request_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


@dataclass(eq=False)
class Connection:
    id: str
    websocket: WebSocket
    connected_at: float  # epoch seconds
    started: float  # monotonic
    source_ip: str
    user_agent: str
    domain_name: str
    last_active: float  # epoch seconds
    open: bool = True
    closing: tuple[int, str] | None = None  # set when the stand-in closes the socket itself
    # What the $connect authorizer allowed it with (principalId and its context), added to every
    # later event of the connection as ``requestContext.authorizer``, as API Gateway does.
    authorizer: dict[str, Any] | None = None


def connect_event(websocket: WebSocket, stage: Stage) -> tuple[Connection, dict[str, Any]]:
    """The ``$connect`` event: the client's headers (with API Gateway's X-Forwarded-*), the
    query string, and the request context."""
    now = time.time()
    headers, multi = _headers(websocket.scope.get("headers", []))
    client = websocket.scope.get("client") or ("127.0.0.1", 0)
    forwarded = {"X-Forwarded-For": str(client[0]), "X-Forwarded-Port": str(stage.port), "X-Forwarded-Proto": "http"}
    for name, value in forwarded.items():
        headers.setdefault(name, value)
        multi.setdefault(name, [value])
    conn = Connection(
        id=new_id(),
        websocket=websocket,
        connected_at=now,
        started=time.monotonic(),
        source_ip=str(client[0]),
        user_agent=lookup(headers, "user-agent") or "",
        domain_name=lookup(headers, "host") or f"{LOOPBACK}:{stage.port}",
        last_active=now,
    )
    event: dict[str, Any] = {
        "headers": headers,
        "multiValueHeaders": multi,
        "isBase64Encoded": False,
        "requestContext": request_context(conn, stage, "$connect", "CONNECT", new_id(), user_agent=True),
    }
    query = websocket.scope.get("query_string", b"").decode("latin-1")
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        event["queryStringParameters"] = dict(pairs)
        multi_query: dict[str, list[str]] = {}
        for k, v in pairs:
            multi_query.setdefault(k, []).append(v)
        event["multiValueQueryStringParameters"] = multi_query
    return conn, event


def disconnect_event(conn: Connection, stage: Stage, code: int, reason: str) -> dict[str, Any]:
    context = request_context(conn, stage, "$disconnect", "DISCONNECT", new_id())
    context["disconnectStatusCode"] = code
    context["disconnectReason"] = reason
    return {
        "headers": {"Host": conn.domain_name, "x-api-key": "", "x-restapi": ""},
        "multiValueHeaders": {"Host": [conn.domain_name], "x-api-key": [""], "x-restapi": [""]},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def request_context(
    conn: Connection, stage: Stage, route_key: str, event_type: str, request_id: str, *, user_agent: bool = False
) -> dict[str, Any]:
    now = time.time()
    identity: dict[str, str] = {"sourceIp": conn.source_ip}
    if user_agent:
        identity["userAgent"] = conn.user_agent
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": _request_time(now),
        "messageDirection": "IN",
        "stage": stage.name,
        "connectedAt": int(conn.connected_at * 1000),
        "requestTimeEpoch": int(now * 1000),
        "identity": identity,
        "requestId": request_id,
        "domainName": conn.domain_name,
        "connectionId": conn.id,
        "apiId": stage.api_id,
    }
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    return context


def authorizer_event(connect: dict[str, Any], stage: Stage) -> dict[str, Any]:
    """The ``REQUEST`` authorizer's input: the ``$connect`` event with its type and method ARN."""
    arn = f"arn:aws:execute-api:us-east-1:000000000000:{stage.api_id}/{stage.name}/$connect"
    return {"type": "REQUEST", "methodArn": arn, **connect}


def _headers(raw: list[tuple[bytes, bytes]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """API Gateway keeps the client's header casing; ``headers`` holds the last value of each."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name_b, value_b in raw:
        name, value = name_b.decode("latin-1"), value_b.decode("latin-1")
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def lookup(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)
