"""Property-based: raw WebSocket frames, however wrong, sent through the API Gateway stand-in into a
live call. No handler raises or outlives its timeout (the stand-in would write an error frame into
the socket, as API Gateway does), nothing the app sends back is invalid, the socket stays open and
bound to its call, and a real prompt after the garbage is still answered.

The integration tier fuzzes the handler directly (``tests/integration/test_bad_input.py``); this
one goes through the real socket, the stand-in's event shapes (binary frames arrive base64
encoded), the production wiring and DynamoDB Local.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from local.apigw_ws import MAX_MESSAGE_BYTES, Invocation
from local.caller.frames import ProtocolError, validate
from local.demo_model import HOURS
from local.stack import LocalStack
from tests.e2e.conftest import texts_by_role, turn_items
from tests.reliability.conftest import AUTH_TOKEN, FULL
from tests.support.frame_strategies import FIELDS, KNOWN_TYPES, json_values
from voice_agent.adapters.dynamo_store import conn_key
from voice_agent.agent.config import AGENT
from voice_agent.signatures import sign

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EXAMPLES = 2000 if FULL else 300
REPORT = Path(".local/reliability/bad-frames.json")


def not_the_human_key(message: dict[str, Any]) -> bool:
    # A valid press of the human key hands the call off and waits for the line to play (seconds
    # each): covered by its own tests, kept out of the fuzz to keep it quick.
    return not (message.get("type") == "dtmf" and str(message.get("digit")) == AGENT.human_key)


known_type_anything = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES)}, optional=dict.fromkeys(FIELDS, json_values)
).filter(not_the_human_key)
text = st.text(max_size=80)
well_formed = st.one_of(  # the right shapes with odd values: these reach the store and the model
    st.fixed_dictionaries({"type": st.just("prompt"), "voicePrompt": text, "last": st.booleans(), "lang": text}),
    st.fixed_dictionaries(
        {
            "type": st.just("setup"),
            "sessionId": text,
            "callSid": text,
            "customParameters": st.dictionaries(text, json_values, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("interrupt"), "utteranceUntilInterrupt": text, "durationUntilInterruptMs": json_values}
    ),
    st.fixed_dictionaries({"type": st.just("dtmf"), "digit": st.sampled_from("123456789*#ABCD") | text}),
    st.fixed_dictionaries({"type": st.just("info"), "name": text, "value": json_values}),
    st.fixed_dictionaries({"type": st.just("error"), "description": text}),
)
huge_field = st.tuples(
    st.sampled_from(["prompt", "interrupt", "error", "info", "setup"]),
    st.sampled_from(["voicePrompt", "utteranceUntilInterrupt", "description", "value", "callSid"]),
    st.integers(min_value=10_000, max_value=MAX_MESSAGE_BYTES - 2048),
).map(lambda t: json.dumps({"type": t[0], t[1]: "b" * t[2], "last": True}))
other_type = st.fixed_dictionaries(
    {"type": st.text(max_size=12).filter(lambda t: t not in KNOWN_TYPES) | json_values},
    optional=dict.fromkeys(FIELDS, json_values),
)
near_the_limit = st.integers(min_value=1, max_value=MAX_MESSAGE_BYTES - 1024).map(
    lambda n: json.dumps({"type": "prompt", "voicePrompt": "a" * n, "last": False})
)
deep = st.integers(min_value=100, max_value=5000).map(lambda n: "[" * n + "]" * n)
frames = st.one_of(
    known_type_anything.map(json.dumps),
    well_formed.filter(not_the_human_key).map(json.dumps),
    other_type.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=300),
    known_type_anything.map(lambda m: json.dumps(m).encode()),  # JSON in a binary frame
    st.one_of(near_the_limit, huge_field, deep),
)


def kind(frame: str | bytes) -> str:
    if isinstance(frame, bytes):
        return "binary"
    if len(frame) > 10_000:
        return "huge"
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        return "not JSON"
    if not isinstance(data, dict):
        return "JSON, not an object"
    t = data.get("type")
    if not isinstance(t, str):
        return "no string type"
    return f"type {t}" if t in KNOWN_TYPES else "unknown type"


@dataclass
class LiveSocket:
    """A signed WebSocket into the stand-in, bound to a call by a valid setup."""

    stack: LocalStack
    ws: ClientConnection
    connection_id: str
    call_sid: str
    sent: Counter[str] = field(default_factory=Counter)
    received: list[str | bytes] = field(default_factory=list)

    def invocations(self) -> list[Invocation]:
        assert self.stack.gateway is not None
        return [
            i
            for i in list(self.stack.gateway.invocations)
            if i.connection_id == self.connection_id and i.route_key == "$default"
        ]

    def send(self, frame: str | bytes, timeout_s: float = 30) -> Invocation:
        """Send one frame and wait until its ``$default`` invocation has returned."""
        before = len(self.invocations())
        self.ws.send(frame)
        deadline = time.monotonic() + timeout_s
        while len(self.invocations()) <= before:
            assert time.monotonic() < deadline, "the frame's invocation did not finish"
            time.sleep(0.005)
        return self.invocations()[-1]

    def drain(self, wait_s: float = 0.0) -> list[str | bytes]:
        out: list[str | bytes] = []
        deadline = time.monotonic() + wait_s
        while True:
            try:
                out.append(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                break
        self.received += out
        return out


def open_socket(stack: LocalStack) -> LiveSocket:
    assert stack.gateway is not None
    before = set(stack.gateway.open_connections())
    ws = connect(
        stack.urls.relay,
        additional_headers={"X-Twilio-Signature": sign(AUTH_TOKEN, stack.urls.relay)},
        compression=None,
        ping_interval=None,
        max_size=2**20,
        legacy=True,  # held open across tests by a module fixture, closed by it
    )
    deadline = time.monotonic() + 10  # the stand-in registers the socket just after the handshake
    while not (new := set(stack.gateway.open_connections()) - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    [connection_id] = new
    call_sid = "CA" + uuid.uuid4().hex
    live = LiveSocket(stack, ws, connection_id, call_sid)
    setup = {"type": "setup", "sessionId": "VX" + uuid.uuid4().hex, "callSid": call_sid, "customParameters": {}}
    assert live.send(json.dumps(setup)).outcome == "ok"
    return live


@pytest.fixture(scope="module")
def live(stack: LocalStack) -> Iterator[LiveSocket]:
    socket = open_socket(stack)
    yield socket
    socket.ws.close()
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"frames": sum(socket.sent.values()), "by_kind": dict(socket.sent)}, indent=2))


def ask_the_hours(live: LiveSocket) -> str:
    """A real prompt on the socket; the reply's text (it must end with ``last: true``)."""
    live.drain()
    live.send(json.dumps({"type": "prompt", "voicePrompt": "When are you open?", "lang": "en-US", "last": True}))
    said, last = [], False
    for frame in live.drain(wait_s=0.5):
        parsed = validate(frame)
        if parsed.type == "text":
            said.append(parsed.token)
            last = last or parsed.last
    assert last
    return "".join(said)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frame=frames)
def test_no_frame_breaks_a_handler_or_draws_an_invalid_answer(
    live: LiveSocket, stack: LocalStack, frame: str | bytes
) -> None:
    assert stack.gateway is not None
    errors = stack.gateway.error_frames
    invocation = live.send(frame)
    live.sent[kind(frame)] += 1
    assert invocation.outcome == "ok", invocation
    assert invocation.duration_s < 25
    for answer in live.drain():
        try:
            validate(answer)  # a reply to an accidental valid prompt is fine; anything else is not
        except ProtocolError as exc:
            pytest.fail(f"the app answered {frame!r} with an invalid frame: {exc.reason}")
    assert stack.gateway.error_frames == errors


def test_after_the_garbage_the_socket_is_open_bound_to_its_call_and_answered(
    live: LiveSocket, stack: LocalStack, dynamodb: DynamoDBClient
) -> None:
    assert sum(live.sent.values()) >= EXAMPLES // 2  # the fuzz above ran on this socket
    try:
        said = ask_the_hours(live)
    except ConnectionClosed:
        pytest.fail("the socket was closed by the garbage")
    assert said == HOURS
    # Setups naming other call SIDs were among the garbage: the socket still belongs to its call,
    # and the prompt above went into that call's history.
    table = stack.options.table_name
    item = dynamodb.get_item(TableName=table, Key=conn_key(live.connection_id), ConsistentRead=True)["Item"]
    assert item["callSid"]["S"] == live.call_sid
    assert texts_by_role(turn_items(dynamodb, table, live.call_sid), "user")[-1] == "When are you open?"


def test_a_frame_over_api_gateways_limit_closes_the_socket_like_api_gateway(stack: LocalStack) -> None:
    socket = open_socket(stack)
    socket.ws.send("x" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(ConnectionClosed) as closed:
        socket.ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
