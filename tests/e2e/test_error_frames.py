"""A handler that raises or outlives API Gateway's integration timeout shows locally as it would in
a call: an error frame in the socket, which the simulated caller reports as a protocol error."""

from __future__ import annotations

import time
from typing import Any

import pytest

from local.caller import scenario
from local.stack import LocalStack
from tests.e2e.conftest import AUTH_TOKEN, run, scripted
from voice_agent.entry import ws_message


def is_prompt(event: dict[str, Any]) -> bool:
    return '"type":"prompt"' in str(event.get("body") or "").replace(" ", "")


def test_a_handler_that_raises_puts_an_error_frame_in_the_call(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ws_message.handler

    def buggy(event: dict[str, Any], context: object) -> dict[str, Any]:
        if is_prompt(event):
            raise RuntimeError("a bug in the message handler")
        return real(event, context)

    monkeypatch.setattr(ws_message, "handler", buggy)
    steps: list[dict[str, Any]] = [{"say": "Hello?", "timeout_s": 2}, {"hangup": True}]
    result = run(scenario.run(scripted(steps), voice_url=stack.urls.voice, auth_token=AUTH_TOKEN, out=lambda _: None))
    assert not result.passed
    [error] = result.call.protocol_errors
    assert error.reason == "API Gateway error frame: 'Internal server error'"
    assert any("invalid frame" in f for f in result.failures)


def test_a_handler_past_the_integration_timeout_puts_a_timeout_frame_in_the_call(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.gateway is not None
    real = ws_message.handler

    def slow(event: dict[str, Any], context: object) -> dict[str, Any]:
        if is_prompt(event):
            time.sleep(0.8)  # past the (shortened) integration timeout; the "Lambda" carries on
        return real(event, context)

    monkeypatch.setattr(ws_message, "handler", slow)
    monkeypatch.setattr(stack.gateway, "integration_timeout_s", 0.3)
    steps: list[dict[str, Any]] = [{"say": "When are you open?", "expect": "Sunday"}, {"hangup": True}]
    result = run(scenario.run(scripted(steps), voice_url=stack.urls.voice, auth_token=AUTH_TOKEN, out=lambda _: None))
    [error] = result.call.protocol_errors
    assert error.reason == "API Gateway error frame: 'Endpoint request timed out'"
    assert result.failures == ["1 invalid frame(s) from the app (Twilio error 64107)"]  # the reply still came
