from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl, urlsplit

import pytest

from voice_agent.call_tokens import SocketClaim, derive_key, relay_url, token_for
from voice_agent.core.handshake import UpgradeDecision, decide_upgrade
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


def test_a_signer_that_drops_the_query_is_accepted_too() -> None:
    # Whether Twilio keeps the query when it signs the upgrade is not documented: the bare URL's
    # signature is accepted, and what the query claims (a call) is checked by its own token.
    assert valid_upgrade(TOKEN, WSS, {"callSid": "CA1"}, twilio_signature(TOKEN, WSS, {}))


# -- the per-call token in the relay URL (call_tokens.py) --------------------------------------


CALL = "CA" + "1" * 32
OTHER = "CA" + "2" * 32


def _upgrade(url: str, signed_over: str | None = None) -> UpgradeDecision:
    query = dict(parse_qsl(urlsplit(url).query))
    headers = {"X-Twilio-Signature": twilio_signature(TOKEN, signed_over or url, {})}
    return decide_upgrade(headers=headers, query=query, public_url=WSS, auth_token=TOKEN, validation=True)


def test_each_calls_socket_url_and_so_its_signature_differ() -> None:
    key = derive_key(TOKEN)
    first, second = relay_url(WSS, CALL, token_for(key, CALL), 0), relay_url(WSS, OTHER, token_for(key, OTHER), 0)
    assert first != second and sign(TOKEN, first) != sign(TOKEN, second)
    assert token_for(key, CALL) != token_for(derive_key("other-account"), CALL)
    assert token_for(key, CALL) != sign(TOKEN, CALL)  # a token is never a Twilio signature


@pytest.mark.parametrize("signed_over", ["as-written", "bare"])
def test_an_upgrade_naming_its_call_with_its_token_is_bound_to_it(signed_over: str) -> None:
    url = relay_url(WSS, CALL, token_for(derive_key(TOKEN), CALL), 2)
    decision = _upgrade(url, None if signed_over == "as-written" else WSS)
    assert decision.allowed
    assert decision.claim == SocketClaim(call_sid=CALL, token=token_for(derive_key(TOKEN), CALL), session=2)


def test_a_socket_naming_another_call_is_refused() -> None:
    key = derive_key(TOKEN)
    borrowed = relay_url(WSS, OTHER, token_for(key, CALL), 0)  # call B's id with call A's token
    assert _upgrade(borrowed).status_code == 403
    forged = relay_url(WSS, CALL, "x" * 32, 0)
    assert _upgrade(forged).status_code == 403
    half = f"{WSS}?callSid={CALL}"  # a call without a token
    assert _upgrade(half).status_code == 403
    assert _upgrade(f"{WSS}?callSid=not-a-sid&callToken=abc").status_code == 403


def test_an_upgrade_naming_no_call_is_accepted_unbound() -> None:
    decision = _upgrade(WSS)
    assert decision.allowed and decision.claim is None


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
