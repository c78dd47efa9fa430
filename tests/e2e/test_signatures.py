"""Twilio signatures are checked on both legs: the WebSocket upgrade ($connect) and the webhooks."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from local.caller import scenario
from local.stack import LocalStack
from tests.e2e.conftest import AUTH_TOKEN, explain, run, scripted
from voice_agent.signatures import sign

HELLO = scripted([{"say": "Hello?", "expect": "help"}, {"hangup": True}])


@pytest.mark.parametrize(
    ("token", "status"),
    # Unsigned: $connect's authorizer lacks its identity source (the signature header), and API
    # Gateway refuses with 401 before any function runs; a wrong signature is denied (403).
    [(None, 401), ("not-the-auth-token", 403)],
    ids=["unsigned", "wrong-token"],
)
def test_an_upgrade_without_a_valid_signature_is_refused(stack: LocalStack, token: str | None, status: int) -> None:
    result = run(scenario.run(HELLO, relay_url=stack.urls.relay, auth_token=token, out=lambda _: None))
    assert result.call.outcome == "connect_failed"
    assert result.call.upgrade_status == status
    assert result.call.sessions == []


def upgrade_status(url: str, signature: str) -> int:
    async def attempt() -> int:
        try:
            async with connect(url, additional_headers={"X-Twilio-Signature": signature}):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return run(attempt())


def test_an_upgrade_signed_over_another_url_is_refused(stack: LocalStack) -> None:
    url = stack.urls.relay
    assert upgrade_status(url, sign(AUTH_TOKEN, url)) == 101
    # The signature covers the exact URL in the TwiML: scheme, host, port and stage.
    assert upgrade_status(url, sign(AUTH_TOKEN, url.replace("ws://", "wss://"))) == 403
    assert upgrade_status(url, sign(AUTH_TOKEN, url + "/")) == 403
    assert upgrade_status(url, sign(AUTH_TOKEN, url.replace("/local", "/prod"))) == 403
    assert upgrade_status(url, sign(AUTH_TOKEN, url, {"CallSid": "CA" + "1" * 32})) == 403


def test_a_correctly_signed_upgrade_is_accepted(stack: LocalStack) -> None:
    result = run(scenario.run(HELLO, relay_url=stack.urls.relay, auth_token=AUTH_TOKEN, out=lambda _: None))
    assert result.passed, explain(result)


@pytest.mark.parametrize("token", [None, "not-the-auth-token"], ids=["unsigned", "wrong-token"])
def test_the_voice_webhook_refuses_unsigned_or_forged_requests(stack: LocalStack, token: str | None) -> None:
    assert stack.urls.voice is not None
    result = run(scenario.run(HELLO, voice_url=stack.urls.voice, auth_token=token, out=lambda _: None))
    assert result.call.outcome == "webhook_failed"
    assert result.call.webhook_statuses == [("/voice", 403)]


def test_the_action_callback_refuses_a_forged_request(stack: LocalStack) -> None:
    url = f"{stack.urls.webhook}/action"
    form = {"CallSid": "CA" + "1" * 32, "CallStatus": "in-progress", "SessionStatus": "ended", "HandoffData": "{}"}
    forged = httpx.post(url, data=form, headers={"X-Twilio-Signature": sign("not-the-auth-token", url, form)})
    assert forged.status_code == 403
    signed = httpx.post(url, data=form, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, form)})
    assert signed.status_code == 200
    assert "<Dial" in signed.text  # a signed handoff is honoured
