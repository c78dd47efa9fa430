from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from voice_agent.core.handshake import decide_upgrade
from voice_agent.signatures import header, sign, valid_upgrade, valid_webhook

TOKEN = "12345"
WSS = "wss://abc123.execute-api.us-east-1.amazonaws.com/prod"


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm, written out independently of twilio-python."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_sign_matches_twilios_algorithm() -> None:
    params = {"CallSid": "CA1", "From": "+15551234567", "To": "+15557654321"}
    assert sign(TOKEN, "https://hooks.example.com/voice", params) == twilio_signature(
        TOKEN, "https://hooks.example.com/voice", params
    )


def test_webhook_signatures() -> None:
    url = "https://hooks.example.com/voice"
    params = {"CallSid": "CA1", "From": "+15551234567"}
    good = twilio_signature(TOKEN, url, params)
    assert valid_webhook(TOKEN, url, params, good)
    assert not valid_webhook(TOKEN, url, {**params, "From": "+15550000000"}, good)
    assert not valid_webhook(TOKEN, url + "?x=1", params, good)
    assert not valid_webhook("other-token", url, params, good)
    assert not valid_webhook(TOKEN, url, params, None)
    assert not valid_webhook(TOKEN, url, params, "")


def test_upgrade_is_signed_over_the_wss_url_with_its_stage_path() -> None:
    good = twilio_signature(TOKEN, WSS, {})
    assert valid_upgrade(TOKEN, WSS, None, good)
    assert not valid_upgrade(TOKEN, WSS.replace("wss://", "https://"), None, good)
    assert not valid_upgrade(TOKEN, WSS.removesuffix("/prod"), None, good)
    assert not valid_upgrade(TOKEN, WSS, None, twilio_signature(TOKEN, WSS.replace("/prod", "/dev"), {}))


@pytest.mark.parametrize("form", ["full-url", "query-as-params"])
def test_upgrade_with_a_query_string_accepts_both_documented_forms(form: str) -> None:
    query = {"b": "2", "a": "1"}
    if form == "full-url":
        signature = twilio_signature(TOKEN, WSS + "?a=1&b=2", {})
    else:
        signature = twilio_signature(TOKEN, WSS, query)
    assert valid_upgrade(TOKEN, WSS, query, signature)
    assert not valid_upgrade(TOKEN, WSS, {"a": "1", "b": "3"}, signature)


def test_headers_are_case_insensitive() -> None:
    assert header({"X-Twilio-Signature": "s"}, "x-twilio-signature") == "s"
    assert header({"x-twilio-signature": "s"}, "X-TWILIO-SIGNATURE") == "s"
    assert header(None, "x") is None


def test_upgrade_decisions() -> None:
    good = {"X-Twilio-Signature": twilio_signature(TOKEN, WSS, {})}
    kwargs = {"query": {}, "public_url": WSS, "auth_token": TOKEN, "validation": True}
    assert decide_upgrade(headers=good, **kwargs).status_code == 200  # type: ignore[arg-type]
    assert decide_upgrade(headers={}, **kwargs).status_code == 403  # type: ignore[arg-type]
    assert decide_upgrade(headers={"X-Twilio-Signature": "forged"}, **kwargs).status_code == 403  # type: ignore[arg-type]
    missing = {**kwargs, "auth_token": None}
    assert decide_upgrade(headers=good, **missing).status_code == 500  # type: ignore[arg-type]
    off = decide_upgrade(headers={}, query={}, public_url=None, auth_token=None, validation=False)
    assert off.allowed


def test_offered_subprotocol_is_echoed() -> None:
    good = {"X-Twilio-Signature": twilio_signature(TOKEN, WSS, {}), "Sec-WebSocket-Protocol": "relay.v1, other"}
    decision = decide_upgrade(headers=good, query={}, public_url=WSS, auth_token=TOKEN, validation=True)
    assert decision.subprotocol == "relay.v1"


def test_repeated_form_fields_are_signed_like_twilio_does() -> None:
    url = "https://hooks.example.com/voice"
    expected = base64.b64encode(hmac.new(TOKEN.encode(), (url + "a1a2b3").encode(), hashlib.sha1).digest()).decode()
    assert sign(TOKEN, url, {"b": "3", "a": ["2", "1"]}) == expected
    assert valid_webhook(TOKEN, url, {"a": ["1", "2"], "b": ["3"]}, expected)
