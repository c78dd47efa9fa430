"""$connect binds a socket to the call its URL names (call_tokens.py), before any setup: a socket
naming another call is refused there, a setup naming another call than its socket's is ignored,
and a second socket of the same <Connect> is recognised as Twilio's application reconnect."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.conftest import TEST_ENV
from tests.support.events import FakeLambdaContext, connect_event, relay_frame
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.call_tokens import SocketClaim, derive_key, relay_url, token_for
from voice_agent.entry import ws_connect
from voice_agent.errors import ConnectionAlreadyBoundError
from voice_agent.protocol.inbound import Setup, parse_inbound

AUTH = TEST_ENV["TWILIO_AUTH_TOKEN"]
BASE = TEST_ENV["RELAY_PUBLIC_URL"]
CALL = "CA" + "3" * 32
OTHER = "CA" + "4" * 32


def token(call_sid: str) -> str:
    return token_for(derive_key(AUTH), call_sid)


def upgrade(store: DynamoSessionStore, connection_id: str, url: str, signed_over: str | None = None) -> dict[str, Any]:
    from voice_agent.signatures import sign

    event = connect_event(connection_id, query=dict(parse_qsl(urlsplit(url).query)))
    event["headers"]["X-Twilio-Signature"] = sign(AUTH, signed_over or url)

    def prebind(cid: str, claim: SocketClaim) -> bool:
        return store.prebind_connection(cid, claim.call_sid, claim.session)

    return ws_connect.handler(event, FakeLambdaContext(), prebind=prebind)


def setup_for(call_sid: str, session_id: str = "VX1") -> Setup:
    message = parse_inbound(relay_frame("setup", callSid=call_sid, sessionId=session_id)).message
    assert isinstance(message, Setup)
    return message


def test_an_upgrade_for_the_call_is_bound_and_its_setup_completes_the_binding(store: DynamoSessionStore) -> None:
    assert upgrade(store, "c1", relay_url(BASE, CALL, token(CALL), 0))["statusCode"] == 200
    # noted, not yet set up: no turn can start on it, an interrupt writes nothing
    assert store.start_turn("c1", "hello") is None
    assert store.record_interrupt("c1", "heard", 100) is None
    session = store.bind_connection("c1", setup_for(CALL))
    assert session.call_sid == CALL and session.conn_seq == 1 and not session.app_reconnect
    assert store.start_turn("c1", "hello") is not None


def test_a_socket_naming_another_call_is_refused_at_connect(store: DynamoSessionStore) -> None:
    borrowed = relay_url(BASE, OTHER, token(CALL), 0)
    assert upgrade(store, "c9", borrowed)["statusCode"] == 403
    assert store.start_turn("c9", "x") is None


def test_a_setup_naming_another_call_than_its_socket_is_ignored(store: DynamoSessionStore) -> None:
    upgrade(store, "c1", relay_url(BASE, CALL, token(CALL), 0))
    with pytest.raises(ConnectionAlreadyBoundError):
        store.bind_connection("c1", setup_for(OTHER))
    assert store.get_call(OTHER) is not None  # (only its counters moved, as before)
    session = store.bind_connection("c1", setup_for(CALL))
    assert session.call_sid == CALL


def test_a_second_socket_of_the_same_connect_is_an_application_reconnect(store: DynamoSessionStore) -> None:
    first = relay_url(BASE, CALL, token(CALL), 0)
    upgrade(store, "c1", first)
    assert not store.bind_connection("c1", setup_for(CALL, "VX1")).app_reconnect
    # Twilio reconnects the same URL by itself: same <Connect>, a new socket
    upgrade(store, "c2", first)
    again = store.bind_connection("c2", setup_for(CALL, "VX1"))
    assert again.app_reconnect and again.resumed and again.conn_seq == 2
    # /action's new <Connect> has its own session number: not an application reconnect
    upgrade(store, "c3", relay_url(BASE, CALL, token(CALL), 1))
    resumed = store.bind_connection("c3", setup_for(CALL, "VX2"))
    assert resumed.resumed and not resumed.app_reconnect


def test_connect_accepts_the_upgrade_when_the_store_cannot_note_it(store: DynamoSessionStore) -> None:
    from voice_agent.signatures import sign

    url = relay_url(BASE, CALL, token(CALL), 0)
    event = connect_event("c1", query=dict(parse_qsl(urlsplit(url).query)))
    event["headers"]["X-Twilio-Signature"] = sign(AUTH, url)

    def down(cid: str, claim: SocketClaim) -> bool:
        from voice_agent.errors import StoreUnavailableError

        raise StoreUnavailableError("prebind")

    assert ws_connect.handler(event, FakeLambdaContext(), prebind=down)["statusCode"] == 200
    assert store.bind_connection("c1", setup_for(CALL)).call_sid == CALL  # the setup binds it


def test_a_socket_that_takes_over_starts_turns_only_once_opened(store: DynamoSessionStore) -> None:
    store.bind_connection("c1", setup_for(CALL))
    assert not store.bind_connection("c1b", setup_for(OTHER)).opening  # a call's first socket: open at once
    resumed = store.bind_connection("c2", setup_for(CALL, "VX2"))
    assert resumed.opening and resumed.resumed
    assert store.start_turn("c2", "hello") is None  # binding: the relay stores its greeting first
    store.open_connection("c2")
    assert store.start_turn("c2", "hello") is not None
    again = store.bind_connection("c3", setup_for(CALL, "VX3"))
    store.close_connection("c3", gone=False, code=1000)
    store.open_connection("c3")  # closed meanwhile: it stays closed
    assert again.opening and store.start_turn("c3", "hello") is None


ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect"


def authorize(url: str, signed_over: str | None = None) -> dict[str, Any]:
    from voice_agent.signatures import sign

    event: dict[str, Any] = {
        "type": "REQUEST",
        "methodArn": ARN,
        **connect_event("c1", query=dict(parse_qsl(urlsplit(url).query))),
    }
    event["headers"]["X-Twilio-Signature"] = sign(AUTH, signed_over or url)
    return ws_connect.handler(event, FakeLambdaContext())


def effect(policy: dict[str, Any]) -> str:
    [statement] = policy["policyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke" and statement["Resource"] == ARN
    return str(statement["Effect"])


def test_the_connect_authorizer_allows_a_signed_upgrade_and_names_its_call(store: DynamoSessionStore) -> None:
    url = relay_url(BASE, CALL, token(CALL), 2)
    allowed = authorize(url)
    assert effect(allowed) == "Allow"
    assert allowed["context"] == {"callSid": CALL, "session": 2}  # API Gateway adds it to every later event
    assert store._sockets.noted("c1") is None  # it writes nothing: the $connect integration notes the call
    assert upgrade(store, "c1", url)["statusCode"] == 200
    assert store._sockets.noted("c1") is not None


@pytest.mark.parametrize(
    ("url", "signed_over"),
    [
        (relay_url(BASE, OTHER, token(CALL), 0), None),  # another call's token
        (relay_url(BASE, CALL, token(CALL), 0), "wss://elsewhere.example/prod"),  # signed over another URL
        (f"{BASE}?callSid={CALL}&callToken=short&session=0", None),  # a malformed token
    ],
)
def test_the_connect_authorizer_denies_what_the_integration_would_refuse(
    store: DynamoSessionStore, url: str, signed_over: str | None
) -> None:
    denied = authorize(url, signed_over)
    assert effect(denied) == "Deny" and "context" not in denied
    assert upgrade(store, "c9", url, signed_over)["statusCode"] == 403


def test_the_connect_authorizer_denies_when_deciding_fails(store: DynamoSessionStore) -> None:
    def broken(_: Any) -> Any:
        raise RuntimeError("the secret could not be read")

    event = {"type": "REQUEST", "methodArn": ARN, **connect_event("c1")}
    denied = ws_connect.handler(event, FakeLambdaContext(), decide=broken)
    assert effect(denied) == "Deny" and "context" not in denied
