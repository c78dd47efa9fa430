"""The API Gateway WebSocket stand-in behaves like the real service where the runtime depends on it:
event shapes, upgrade refusal, concurrency, the management API through real boto3, error frames."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import httpx
import pytest
from botocore.config import Config
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local.apigw_ws import ApiGatewayWebSocketStandIn, Handler, Routes

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

OK = {"statusCode": 200}


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


class Recorder:
    """Handlers that record their events; behaviour per test through ``on_message``."""

    def __init__(self) -> None:
        self.connects: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.disconnects: list[dict[str, Any]] = []
        self.connect_response: Callable[[dict[str, Any]], Any] = lambda event: OK
        self.on_message: Callable[[dict[str, Any], Any], Any] = lambda event, ctx: OK
        self.disconnected = threading.Event()

    def routes(self, **custom: Handler) -> Routes:
        return Routes(connect=self._connect, default=self._message, disconnect=self._disconnect, custom=custom)

    def _connect(self, event: dict[str, Any], ctx: Any) -> Any:
        self.connects.append(event)
        return self.connect_response(event)

    def _message(self, event: dict[str, Any], ctx: Any) -> Any:
        self.messages.append(event)
        return self.on_message(event, ctx)

    def _disconnect(self, event: dict[str, Any], ctx: Any) -> Any:
        self.disconnects.append(event)
        self.disconnected.set()
        return OK


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def gateway(recorder: Recorder) -> Iterator[ApiGatewayWebSocketStandIn]:
    with ApiGatewayWebSocketStandIn(recorder.routes(), stage="test", integration_timeout_s=0.5) as stand_in:
        yield stand_in


def management(stand_in: ApiGatewayWebSocketStandIn) -> ApiGatewayManagementApiClient:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=stand_in.callback_url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def connection_id(recorder: Recorder) -> str:
    return str(recorder.connects[-1]["requestContext"]["connectionId"])


async def recv_json(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return data


def test_connect_event_carries_the_upgrade_headers_query_and_context(
    gateway: ApiGatewayWebSocketStandIn, recorder: Recorder
) -> None:
    async def call() -> None:
        async with connect(gateway.url + "?token=abc&x=1", additional_headers={"X-Twilio-Signature": "sig=="}):
            pass

    run(call())
    event = recorder.connects[0]
    headers = {k.lower(): v for k, v in event["headers"].items()}
    assert headers["x-twilio-signature"] == "sig=="
    assert headers["host"] == f"127.0.0.1:{gateway.port}"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert {k.lower(): v for k, v in event["multiValueHeaders"].items()}["x-twilio-signature"] == ["sig=="]
    assert event["queryStringParameters"] == {"token": "abc", "x": "1"}
    assert event["multiValueQueryStringParameters"] == {"token": ["abc"], "x": ["1"]}
    ctx = event["requestContext"]
    assert ctx["routeKey"] == "$connect"
    assert ctx["eventType"] == "CONNECT"
    assert ctx["stage"] == "test"
    assert ctx["apiId"] == "local"
    assert ctx["domainName"] == f"127.0.0.1:{gateway.port}"
    assert ctx["connectionId"].endswith("=")
    assert len(ctx["connectionId"]) == 16
    assert isinstance(ctx["connectedAt"], int)
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["requestId"]
    # The disconnect event follows, with the client's close code.
    assert recorder.disconnected.wait(5)
    gone = recorder.disconnects[0]["requestContext"]
    assert gone["routeKey"] == "$disconnect"
    assert gone["connectionId"] == ctx["connectionId"]
    assert gone["disconnectStatusCode"] == 1000
    assert "1000" in gone["disconnectReason"]


@pytest.mark.parametrize("status", [400, 401, 403, 500])
def test_a_non_2xx_connect_response_refuses_the_upgrade_with_that_status(
    gateway: ApiGatewayWebSocketStandIn, recorder: Recorder, status: int
) -> None:
    recorder.connect_response = lambda event: {"statusCode": status}

    async def call() -> int:
        try:
            async with connect(gateway.url):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert run(call()) == status
    assert recorder.disconnects == []  # never connected, so no $disconnect


def test_a_connect_handler_that_raises_or_hangs_refuses_with_500_or_504(
    gateway: ApiGatewayWebSocketStandIn, recorder: Recorder
) -> None:
    def boom(event: dict[str, Any]) -> Any:
        raise RuntimeError("bug in $connect")

    async def status() -> int:
        try:
            async with connect(gateway.url):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    recorder.connect_response = boom
    assert run(status()) == 500

    def hang(event: dict[str, Any]) -> Any:
        time.sleep(1.0)
        return OK

    recorder.connect_response = hang
    assert run(status()) == 504


def test_the_subprotocol_returned_by_connect_is_negotiated(
    gateway: ApiGatewayWebSocketStandIn, recorder: Recorder
) -> None:
    recorder.connect_response = lambda event: {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "relay.v1"}}

    async def call() -> str | None:
        async with connect(gateway.url, subprotocols=["relay.v1", "other"]) as ws:  # type: ignore[list-item]
            return ws.subprotocol

    assert run(call()) == "relay.v1"


def test_frames_are_concurrent_invocations_not_serialised_per_connection(
    gateway: ApiGatewayWebSocketStandIn, recorder: Recorder
) -> None:
    second_started = threading.Event()

    def on_message(event: dict[str, Any], ctx: Any) -> Any:
        if event["body"] == "first":
            # Serialised invocations would deadlock here: the second frame could never run.
            assert second_started.wait(5), "the second frame waited for the first"
            management(gateway).post_to_connection(ConnectionId=connection_id(recorder), Data=b'{"n":1}')
        else:
            second_started.set()
        return OK

    recorder.on_message = on_message

    async def call() -> dict[str, Any]:
        async with connect(gateway.url) as ws:
            await ws.send("first")
            await ws.send("second")
            return await recv_json(ws)

    assert run(call()) == {"n": 1}
    message = recorder.messages[0]
    ctx = message["requestContext"]
    assert ctx["routeKey"] == "$default"
    assert ctx["eventType"] == "MESSAGE"
    assert ctx["messageId"]
    assert message["isBase64Encoded"] is False
    assert "headers" not in message  # message events carry no headers, as in AWS


def test_the_management_api_posts_describes_and_deletes_through_real_boto3(
    gateway: ApiGatewayWebSocketStandIn, recorder: Recorder
) -> None:
    api = management(gateway)

    async def call() -> None:
        async with connect(gateway.url, user_agent_header="Jetty/11.0.24") as ws:
            cid = connection_id(recorder)
            await asyncio.to_thread(api.post_to_connection, ConnectionId=cid, Data=b'{"type":"text"}')
            assert await asyncio.wait_for(ws.recv(), 5) == '{"type":"text"}'  # one POST, one text frame
            info = await asyncio.to_thread(api.get_connection, ConnectionId=cid)
            assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "Jetty/11.0.24"}
            assert info["ConnectedAt"] <= info["LastActiveAt"]
            exactly = b"x" * (32 * 1024)
            await asyncio.to_thread(api.post_to_connection, ConnectionId=cid, Data=exactly)
            assert len(await asyncio.wait_for(ws.recv(), 5)) == 32 * 1024
            with pytest.raises(api.exceptions.PayloadTooLargeException):
                await asyncio.to_thread(api.post_to_connection, ConnectionId=cid, Data=exactly + b"x")
            await asyncio.to_thread(api.delete_connection, ConnectionId=cid)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert recorder.disconnected.wait(5)
            with pytest.raises(api.exceptions.GoneException):
                await asyncio.to_thread(api.post_to_connection, ConnectionId=cid, Data=b"{}")

    run(call())
    assert recorder.disconnects[0]["requestContext"]["disconnectStatusCode"] == 1000
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId="NeverConnected0=", Data=b"{}")
    with pytest.raises(api.exceptions.GoneException):
        api.get_connection(ConnectionId="NeverConnected0=")


def test_posting_from_connect_is_gone_until_connect_has_returned(
    gateway: ApiGatewayWebSocketStandIn, recorder: Recorder
) -> None:
    errors: list[str] = []

    def post_early(event: dict[str, Any]) -> Any:
        api = management(gateway)
        try:
            api.post_to_connection(ConnectionId=event["requestContext"]["connectionId"], Data=b"{}")
        except api.exceptions.GoneException:
            errors.append("GoneException")
        return OK

    recorder.connect_response = post_early

    async def call() -> None:
        async with connect(gateway.url):
            pass

    run(call())
    assert errors == ["GoneException"]


def test_unsigned_management_requests_are_forbidden(gateway: ApiGatewayWebSocketStandIn) -> None:
    response = httpx.post(f"{gateway.callback_url}/@connections/abc=", content=b"{}")
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "ForbiddenException"


def test_a_handler_that_raises_writes_the_internal_server_error_frame(
    gateway: ApiGatewayWebSocketStandIn, recorder: Recorder
) -> None:
    def boom(event: dict[str, Any], ctx: Any) -> Any:
        raise RuntimeError("bug")

    recorder.on_message = boom

    async def call() -> dict[str, Any]:
        async with connect(gateway.url) as ws:
            await ws.send('{"type":"prompt"}')
            return await recv_json(ws)

    frame = run(call())
    assert frame == {
        "message": "Internal server error",
        "connectionId": connection_id(recorder),
        "requestId": recorder.messages[0]["requestContext"]["requestId"],
    }
    assert gateway.error_frames == 1
    assert gateway.invocations[-1].outcome in ("error", "ok")  # the $disconnect may come last


def test_a_handler_past_the_integration_timeout_writes_the_timeout_frame_and_keeps_running(
    gateway: ApiGatewayWebSocketStandIn, recorder: Recorder
) -> None:
    remaining: list[int] = []

    def slow(event: dict[str, Any], ctx: Any) -> Any:
        remaining.append(ctx.get_remaining_time_in_millis())
        time.sleep(0.8)  # the stand-in gives up after 0.5 s; the "Lambda" carries on
        management(gateway).post_to_connection(ConnectionId=connection_id(recorder), Data=b'{"late":true}')
        return OK

    recorder.on_message = slow

    async def call() -> tuple[dict[str, Any], dict[str, Any]]:
        async with connect(gateway.url) as ws:
            await ws.send("{}")
            return await recv_json(ws), await recv_json(ws)

    timeout_frame, late = run(call())
    assert timeout_frame["message"] == "Endpoint request timed out"
    assert timeout_frame["connectionId"] == connection_id(recorder)
    assert late == {"late": True}  # the socket stayed open and the handler's post arrived
    assert 28_000 < remaining[0] <= 29_000  # counts down from the function timeout (29 s here)


def test_binary_frames_arrive_base64_encoded(gateway: ApiGatewayWebSocketStandIn, recorder: Recorder) -> None:
    async def call() -> None:
        async with connect(gateway.url) as ws:
            await ws.send(b"\x00\x01")
            await asyncio.sleep(0.3)

    run(call())
    assert recorder.messages[0]["isBase64Encoded"] is True
    assert recorder.messages[0]["body"] == "AAE="


def test_custom_routes_are_selected_by_the_body_type(recorder: Recorder) -> None:
    prompts: list[str] = []

    def on_prompt(event: dict[str, Any], ctx: Any) -> Any:
        prompts.append(event["requestContext"]["routeKey"])
        return OK

    with ApiGatewayWebSocketStandIn(recorder.routes(prompt=on_prompt)) as stand_in:

        async def call() -> None:
            async with connect(stand_in.url) as ws:
                await ws.send('{"type":"prompt"}')
                await ws.send('{"type":"dtmf"}')
                await ws.send("not json")
                await asyncio.sleep(0.3)

        run(call())
    assert prompts == ["prompt"]
    assert [m["requestContext"]["routeKey"] for m in recorder.messages] == ["$default", "$default"]


def test_idle_connections_are_closed_like_api_gateway_does(recorder: Recorder) -> None:
    with ApiGatewayWebSocketStandIn(recorder.routes(), idle_timeout_s=0.3) as stand_in:

        async def call() -> int | None:
            async with connect(stand_in.url) as ws:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                return ws.close_code

        assert run(call()) == 1001
        assert recorder.disconnected.wait(5)
    ctx = recorder.disconnects[0]["requestContext"]
    assert ctx["disconnectStatusCode"] == 1001
    assert "idle" in ctx["disconnectReason"].lower()


def test_a_dropped_client_still_gets_its_disconnect(gateway: ApiGatewayWebSocketStandIn, recorder: Recorder) -> None:
    async def call() -> None:
        ws = await connect(gateway.url)
        ws.transport.abort()
        await asyncio.sleep(0.1)

    run(call())
    assert recorder.disconnected.wait(5)
    assert recorder.disconnects[0]["requestContext"]["disconnectStatusCode"] in (1005, 1006)


def policy(effect: str, **context: Any) -> dict[str, Any]:
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": "*"}
    document = {"Version": "2012-10-17", "Statement": [statement]}
    return {"principalId": "p", "policyDocument": document, "context": context}


def test_an_authorizer_runs_before_connect_and_its_context_reaches_every_later_event(recorder: Recorder) -> None:
    asked: list[dict[str, Any]] = []

    def authorizer(event: dict[str, Any], ctx: Any) -> Any:
        asked.append(event)
        allowed = event["queryStringParameters"].get("call") == "CA1"
        return policy("Allow", callSid="CA1", session=0) if allowed else policy("Deny")

    routes = Routes(
        connect=recorder._connect,
        authorizer=authorizer,
        authorizer_headers=("X-Twilio-Signature",),
        default=recorder._message,
        disconnect=recorder._disconnect,
    )
    with ApiGatewayWebSocketStandIn(routes) as stand_in:

        async def status(query: str, headers: dict[str, str]) -> int:
            try:
                async with connect(stand_in.url + query, additional_headers=headers) as ws:
                    await ws.send('{"type":"prompt"}')
                    await asyncio.sleep(0.2)
                    return 101
            except InvalidStatus as exc:
                return exc.response.status_code

        signed = {"X-Twilio-Signature": "sig=="}
        assert run(status("?call=CA2", signed)) == 403  # denied: neither $connect nor $disconnect runs
        assert run(status("?call=CA1", {})) == 401  # no identity source: the authorizer is not asked
        assert len(asked) == 1 and recorder.connects == []
        assert run(status("?call=CA1", signed)) == 101
        assert recorder.disconnected.wait(5)
    assert asked[-1]["type"] == "REQUEST" and asked[-1]["methodArn"].endswith("/$connect")
    assert asked[-1]["requestContext"]["connectionId"] == connection_id(recorder)
    expected = {"principalId": "p", "callSid": "CA1", "session": 0}
    for event in (recorder.connects[0], recorder.messages[0], recorder.disconnects[0]):
        assert event["requestContext"]["authorizer"] == expected
