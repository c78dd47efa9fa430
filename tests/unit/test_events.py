from __future__ import annotations

import base64

import pytest

from tests.support.events import FakeLambdaContext, connect_event, disconnect_event, message_event
from voice_agent.entry.events import ConnectEvent, DisconnectEvent, MessageEvent, remaining_ms


def test_connect_event_keeps_headers_and_query() -> None:
    event = ConnectEvent.parse(connect_event("c1", headers={"X-Twilio-Signature": "sig"}, query={"a": "1"}))
    assert event.connection_id == "c1"
    assert event.headers["X-Twilio-Signature"] == "sig"
    assert event.query == {"a": "1"}


def test_message_event_decodes_base64_bodies() -> None:
    raw = message_event("c1", base64.b64encode(b'{"type":"info"}').decode())
    raw["isBase64Encoded"] = True
    assert MessageEvent.parse(raw).body == b'{"type":"info"}'
    raw["body"] = "%%%not base64"
    assert MessageEvent.parse(raw).body is None
    assert MessageEvent.parse(message_event("c1", "x")).body == "x"


def test_disconnect_event() -> None:
    event = DisconnectEvent.parse(disconnect_event("c1", 1006))
    assert (event.connection_id, event.status_code) == ("c1", 1006)
    assert event.reason


def test_events_without_a_connection_are_rejected() -> None:
    with pytest.raises(ValueError, match="connectionId"):
        MessageEvent.parse({"body": "x"})


def test_remaining_time() -> None:
    assert remaining_ms(FakeLambdaContext(1234)) == 1234
    assert remaining_ms(object()) is None


def test_a_message_carries_the_call_its_connect_authorizer_accepted() -> None:
    raw = message_event("c1", "x")
    assert MessageEvent.parse(raw).call_sid is None  # no authorizer (a stand-in or fork without one)
    raw["requestContext"]["authorizer"] = {"principalId": "CA1", "callSid": "CA1", "session": 0}
    assert MessageEvent.parse(raw).call_sid == "CA1"
    raw["requestContext"]["authorizer"] = {"principalId": "unbound"}
    assert MessageEvent.parse(raw).call_sid is None


def test_the_authorizer_event_is_told_apart_from_the_integrations() -> None:
    raw = connect_event("c1")
    assert not ConnectEvent.is_authorization(raw) and ConnectEvent.parse(raw).method_arn is None
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc/prod/$connect"
    authorizing = {"type": "REQUEST", "methodArn": arn, **raw}
    assert ConnectEvent.is_authorization(authorizing)
    assert ConnectEvent.parse(authorizing).method_arn == arn
    # Should AWS's authorizer input lack the connection id, the upgrade is still decided on.
    del authorizing["requestContext"]["connectionId"]
    assert ConnectEvent.parse(authorizing).connection_id == ""
    with pytest.raises(ValueError, match="connectionId"):
        ConnectEvent.parse({**raw, "requestContext": {}})  # the integration's event always has it
