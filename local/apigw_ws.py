"""A local stand-in for an API Gateway WebSocket API stage, faithful where the runtime cares.

One port serves both sides, as one API Gateway stage does:

- ``ws://127.0.0.1:PORT/<stage>``: the WebSocket. Each upgrade runs the ``$connect`` handler with an
  API Gateway-shaped event (the client's headers, ``X-Twilio-Signature`` included, query string,
  ``requestContext``) before the handshake completes; a non-2xx ``statusCode`` refuses the upgrade
  with that status, and a ``Sec-WebSocket-Protocol`` response header is honoured. Every inbound
  frame is its own ``$default`` invocation on a thread pool: concurrent, never serialised per
  connection (an ``interrupt`` runs while the ``prompt`` before it is still streaming). On close,
  ``$disconnect`` runs with ``disconnectStatusCode`` / ``disconnectReason``.
- ``http://127.0.0.1:PORT/<stage>/@connections/{id}``: the management API that the real boto3
  ``apigatewaymanagementapi`` client reaches through ``endpoint_url``. ``POST`` writes the body into
  the socket as one frame, ``GET`` describes the connection, ``DELETE`` closes it. Unknown or closed
  connections get 410 ``GoneException`` (also before ``$connect`` has returned), data over 32 KB
  413 ``PayloadTooLargeException``, an unsigned request 403 ``ForbiddenException``.

Like the real service, a handler that raises makes the stand-in write
``{"message": "Internal server error", "connectionId": ..., "requestId": ...}`` into the socket,
and one still running after the integration timeout (29 s) writes
``{"message": "Endpoint request timed out", ...}`` while the handler thread carries on. The
handler's context counts ``get_remaining_time_in_millis()`` down from the function timeout.
Connections idle for 10 minutes, or open for 2 hours, are closed (code 1001), as API Gateway does.

Not emulated: IAM (a SigV4 ``Authorization`` header is required but not verified), authorizers,
route responses, throttling (429), custom domains. The limits reproduced here, with AWS's source:
``docs/architecture.md``, "API Gateway limits the design depends on".
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from local.apigw_events import (
    Connection,
    LocalLambdaContext,
    Stage,
    authorizer_event,
    connect_event,
    disconnect_event,
    iso,
    lookup,
    new_id,
    request_context,
)
from local.servers import LOOPBACK, BackgroundServer

log = logging.getLogger("local.apigw")

MAX_POST_BYTES: Final = 32 * 1024  # frame limit; PostToConnection data above it gets 413
MAX_MESSAGE_BYTES: Final = 128 * 1024  # inbound messages above it close the socket (1009)
INTEGRATION_TIMEOUT_S: Final = 29.0
IDLE_TIMEOUT_S: Final = 600.0
MAX_CONNECTION_S: Final = 7200.0

Handler = Callable[[dict[str, Any], Any], Any]
Outcome = Literal["ok", "error", "timeout"]


@dataclass(frozen=True, slots=True)
class Routes:
    """The stage's integrations. Custom routes are selected by ``$request.body.<selection_key>``;
    anything else (and every non-JSON frame) goes to ``$default``."""

    connect: Handler | None = None
    # The $connect route's REQUEST authorizer, run before ``connect``, and the headers it needs
    # (its identity sources: one missing refuses the upgrade with 401 without running it).
    authorizer: Handler | None = None
    authorizer_headers: tuple[str, ...] = ()
    default: Handler | None = None
    disconnect: Handler | None = None
    custom: Mapping[str, Handler] = field(default_factory=dict)
    selection_key: str = "type"


@dataclass(frozen=True, slots=True)
class Invocation:
    """One handler run, as the stand-in saw it (for the console and for tests)."""

    route_key: str
    connection_id: str
    request_id: str
    outcome: Outcome
    duration_s: float
    status_code: int | None = None


def _error(status: int, code: str, message: str) -> Response:
    # botocore's rest-json parser takes the error code from this header (GoneException, ...).
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": code})


class ApiGatewayWebSocketStandIn:
    """``ApiGatewayWebSocketStandIn(routes, stage="local").start()``; ``url`` / ``callback_url``."""

    def __init__(
        self,
        routes: Routes,
        *,
        stage: str = "local",
        host: str = LOOPBACK,
        port: int = 0,
        api_id: str = "local",
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
        function_timeout_s: float = INTEGRATION_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connection_s: float = MAX_CONNECTION_S,
        max_workers: int = 128,
        on_invocation: Callable[[Invocation], None] | None = None,
        history: int = 10_000,
    ) -> None:
        if not stage or "/" in stage:
            raise ValueError("stage must be a single path segment")
        self.routes = routes
        self.stage = stage
        self.api_id = api_id
        self.integration_timeout_s = integration_timeout_s
        self.function_timeout_s = function_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_connection_s = max_connection_s
        self.on_invocation = on_invocation
        self.invocations: deque[Invocation] = deque(maxlen=history)
        self.error_frames = 0  # error frames written into sockets (each one is a bug to fix)
        self._connections: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[futures.Future[Any]] = set()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="lambda")
        app = Starlette(
            routes=[
                WebSocketRoute(f"/{stage}", self._websocket),
                Route(f"/{stage}/@connections/{{connection_id:path}}", self._manage, methods=["POST", "GET", "DELETE"]),
            ]
        )
        self._server = BackgroundServer(app, name="apigw-ws", host=host, port=port, ws_max_size=MAX_MESSAGE_BYTES)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        """The WebSocket URL (what ``RELAY_PUBLIC_URL`` holds and Twilio signs)."""
        return f"ws://{LOOPBACK}:{self.port}/{self.stage}"

    @property
    def callback_url(self) -> str:
        """The management API endpoint (``RELAY_CALLBACK_URL``, boto3's ``endpoint_url``)."""
        return f"http://{LOOPBACK}:{self.port}/{self.stage}"

    def start(self) -> ApiGatewayWebSocketStandIn:
        self._server.start()
        return self

    def stop(self, drain_s: float = 10.0) -> None:
        """Close the sockets (1012, as uvicorn does on shutdown), let running handlers finish for
        up to ``drain_s`` (a turn may be mid-stream), then stop the pool."""
        self._server.stop()
        with self._lock:
            running = set(self._running)
        if running:
            futures.wait(running, timeout=drain_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> ApiGatewayWebSocketStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def open_connections(self) -> list[str]:
        with self._lock:
            return [c.id for c in self._connections.values() if c.open]

    # -- the WebSocket side ---------------------------------------------------------------------

    async def _websocket(self, websocket: WebSocket) -> None:
        conn, event = connect_event(websocket, self._stage())
        status = await self._authorize(conn, event)
        response = None
        if 200 <= status < 300:
            event["requestContext"] = request_context(
                conn, self._stage(), "$connect", "CONNECT", event["requestContext"]["requestId"], user_agent=True
            )
            status, response = await self._invoke_connect(conn, event)
        if not 200 <= status < 300:
            await websocket.send_denial_response(Response(status_code=status))
            return
        subprotocol = lookup(_response_headers(response), "sec-websocket-protocol")
        await websocket.accept(subprotocol=subprotocol)
        with self._lock:
            self._connections[conn.id] = conn
        watchdog = asyncio.create_task(self._watch(conn))
        code, reason = 1006, ""
        try:
            code, reason = await self._receive_frames(conn)
        finally:
            watchdog.cancel()
            conn.open = False
            with self._lock:
                self._connections.pop(conn.id, None)
            if conn.closing is not None:
                code, reason = conn.closing
            elif not reason:
                reason = f"Client-side close frame status code {code}"
            self._spawn(self._run_disconnect(conn, code, reason))

    async def _receive_frames(self, conn: Connection) -> tuple[int, str]:
        """Every frame becomes its own ``$default`` invocation, started at once (never queued
        behind the previous one); returns the close code and reason."""
        while True:
            message = await conn.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return int(message.get("code") or 1005), str(message.get("reason") or "")
            conn.last_active = time.time()
            text = message.get("text")
            self._spawn(self._run_message(conn, text if text is not None else message.get("bytes")))

    async def _authorize(self, conn: Connection, event: dict[str, Any]) -> int:
        """The authorizer's verdict as API Gateway gives it: 401 without an identity source, 403 on
        a ``Deny`` (or no policy), 500 if it fails; allowed, its context is kept for the socket."""
        authorizer = self.routes.authorizer
        if authorizer is None:
            return 200
        if any(lookup(event["headers"], name) is None for name in self.routes.authorizer_headers):
            return 401
        outcome, result = await self._invoke("$connect", conn.id, authorizer_event(event, self._stage()), authorizer)
        if outcome != "ok" or not isinstance(result, Mapping):
            return 500
        statements = (result.get("policyDocument") or {}).get("Statement") or []
        effects = {s.get("Effect") for s in statements if isinstance(s, Mapping)}
        if effects != {"Allow"}:
            return 403
        context = result.get("context") or {}
        # API Gateway hands the context's values on as strings, numbers or booleans only.
        kept = {k: v for k, v in context.items() if isinstance(v, str | int | float | bool)}
        conn.authorizer = {"principalId": str(result.get("principalId", "")), **kept}
        return 200

    async def _invoke_connect(self, conn: Connection, event: dict[str, Any]) -> tuple[int, Any]:
        handler = self.routes.connect
        if handler is None:
            return 200, None
        outcome, result = await self._invoke("$connect", conn.id, event, handler)
        if outcome == "timeout":
            return 504, None
        if outcome == "error":
            return 500, None
        status = result.get("statusCode", 200) if isinstance(result, Mapping) else 200
        return (int(status) if isinstance(status, int | str) and str(status).isdigit() else 502), result

    async def _run_message(self, conn: Connection, body: str | bytes | None) -> None:
        request_id = new_id()
        handler, route_key = self._select(body)
        if handler is None:
            return
        context = request_context(conn, self._stage(), route_key, "MESSAGE", request_id)
        context["messageId"] = new_id()
        event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": isinstance(body, bytes)}
        event["body"] = base64.b64encode(body).decode("ascii") if isinstance(body, bytes) else body
        outcome, _ = await self._invoke(route_key, conn.id, event, handler, request_id=request_id)
        if outcome == "error":
            await self._error_frame(conn, "Internal server error", request_id)
        elif outcome == "timeout":
            await self._error_frame(conn, "Endpoint request timed out", request_id)

    async def _run_disconnect(self, conn: Connection, code: int, reason: str) -> None:
        if self.routes.disconnect is None:
            return
        event = disconnect_event(conn, self._stage(), code, reason)
        await self._invoke("$disconnect", conn.id, event, self.routes.disconnect)

    def _select(self, body: str | bytes | None) -> tuple[Handler | None, str]:
        if self.routes.custom and isinstance(body, str):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            key = parsed.get(self.routes.selection_key) if isinstance(parsed, dict) else None
            if isinstance(key, str) and key in self.routes.custom:
                return self.routes.custom[key], key
        return self.routes.default, "$default"

    async def _invoke(
        self,
        route_key: str,
        connection_id: str,
        event: dict[str, Any],
        handler: Handler,
        *,
        request_id: str | None = None,
    ) -> tuple[Outcome, Any]:
        """Run one handler on the pool, in a fresh context (as a separate Lambda invocation)."""
        request_id = request_id or event["requestContext"]["requestId"]
        lambda_context = LocalLambdaContext(
            function_name=f"local-{route_key.strip('$')}", timeout_s=self.function_timeout_s, request_id=request_id
        )
        started = time.monotonic()

        def run() -> Any:
            return contextvars.Context().run(handler, event, lambda_context)

        try:
            submitted = self._pool.submit(run)
        except RuntimeError:  # the stand-in is stopping: no new invocations
            return "error", None
        with self._lock:
            self._running.add(submitted)
        submitted.add_done_callback(self._done)
        future = asyncio.wrap_future(submitted)
        outcome: Outcome = "ok"
        result: Any = None
        try:
            # shield: on timeout the handler keeps running, as a Lambda does after API Gateway gives up
            result = await asyncio.wait_for(asyncio.shield(future), self.integration_timeout_s)
        except TimeoutError:
            outcome = "timeout"
            log.error(
                "%s handler still running after the %g s integration timeout (connection %s)",
                route_key,
                self.integration_timeout_s,
                connection_id,
            )
            future.add_done_callback(_log_late_failure(route_key, connection_id))
        except Exception:
            outcome = "error"
            log.exception("%s handler raised (connection %s)", route_key, connection_id)
        status = result.get("statusCode") if isinstance(result, Mapping) else None
        record = Invocation(
            route_key=route_key,
            connection_id=connection_id,
            request_id=request_id,
            outcome=outcome,
            duration_s=time.monotonic() - started,
            status_code=status if isinstance(status, int) else None,
        )
        self.invocations.append(record)
        if self.on_invocation is not None:
            try:
                self.on_invocation(record)
            except Exception:
                log.exception("on_invocation callback failed")
        return outcome, result

    async def _error_frame(self, conn: Connection, message: str, request_id: str) -> None:
        if not conn.open:
            return
        self.error_frames += 1
        frame = json.dumps({"message": message, "connectionId": conn.id, "requestId": request_id})
        try:
            await conn.websocket.send_text(frame)
        except Exception:  # the socket closed meanwhile
            log.debug("error frame not delivered", exc_info=True)

    async def _watch(self, conn: Connection) -> None:
        """API Gateway closes idle connections after 10 minutes and any connection after 2 hours."""
        while conn.open:
            now = time.time()
            idle_left = conn.last_active + self.idle_timeout_s - now
            total_left = conn.started + self.max_connection_s - time.monotonic()
            if idle_left <= 0 or total_left <= 0:
                reason = "Connection idle timeout" if idle_left <= 0 else "Connection duration exceeded"
                await self._close(conn, 1001, reason)
                return
            await asyncio.sleep(min(idle_left, total_left) + 0.01)

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        conn.closing = (code, reason)
        try:
            await conn.websocket.close(code, "Going away" if code == 1001 else reason)
        except Exception:
            log.debug("close failed", exc_info=True)

    def _stage(self) -> Stage:
        return Stage(name=self.stage, api_id=self.api_id, port=self.port)

    def _done(self, future: futures.Future[Any]) -> None:
        with self._lock:
            self._running.discard(future)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the management API (@connections) --------------------------------------------------------

    async def _manage(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return _error(403, "ForbiddenException", "Forbidden")
        connection_id = request.path_params["connection_id"]
        with self._lock:
            conn = self._connections.get(connection_id)
        if conn is None or not conn.open:
            return _error(410, "GoneException", "Gone")
        if request.method == "GET":
            body = {
                "connectedAt": iso(conn.connected_at),
                "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
                "lastActiveAt": iso(conn.last_active),
            }
            return JSONResponse(body)
        if request.method == "DELETE":
            await self._close(conn, 1000, "Connection deleted by the management API")
            return Response(status_code=204)
        data = await request.body()
        if len(data) > MAX_POST_BYTES:
            return _error(413, "PayloadTooLargeException", "Message too long")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            if text is not None:
                await conn.websocket.send_text(text)
            else:
                await conn.websocket.send_bytes(data)
        except Exception:  # closed between the lookup and the write
            return _error(410, "GoneException", "Gone")
        conn.last_active = time.time()
        return Response(status_code=200)


def _response_headers(response: Any) -> dict[str, str]:
    headers = response.get("headers") if isinstance(response, Mapping) else None
    return {str(k): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {}


def _log_late_failure(route_key: str, connection_id: str) -> Callable[[asyncio.Future[Any]], None]:
    def done(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("%s handler failed after its timeout (connection %s): %r", route_key, connection_id, exc)
        else:
            log.warning("%s handler finished after the integration timeout (connection %s)", route_key, connection_id)

    return done
