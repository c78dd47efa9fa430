"""Frames the app must survive: malformed JSON, unknown types, partial prompts. Ignored, with no
error frame in the socket, and the next prompt still answered."""

from __future__ import annotations

import json
from typing import Any

from local.caller import scenario
from local.demo_model import HOURS
from local.stack import LocalStack
from tests.e2e.conftest import AUTH_TOKEN, explain, run, scripted


def test_malformed_and_unknown_frames_are_ignored_and_the_next_prompt_is_answered(stack: LocalStack) -> None:
    assert stack.gateway is not None
    errors_before = stack.gateway.error_frames
    steps: list[dict[str, Any]] = [
        {"say": "Hello there", "expect": "opening hours"},
        {"send": "this is not JSON {", "expect_silence": True},
        {"send": json.dumps({"type": "brandNewMessageType", "payload": {"x": 1}}), "expect_silence": True},
        {"send": json.dumps({"type": "prompt"}), "expect_silence": True},  # a prompt without voicePrompt
        {"send": json.dumps({"type": "dtmf", "digit": "12"}), "expect_silence": True},  # not one key
        {"send": json.dumps([1, 2, 3]), "expect_silence": True},
        {"send": json.dumps({"type": "info", "name": "roundTripDelayMs", "value": "148"}), "expect_silence": True},
        {"send": json.dumps({"type": "error", "description": "Invalid message received: {}"}), "expect_silence": True},
        {"say": "When are you open?", "expect": "Sunday from ten until four"},
        {"hangup": True},
    ]
    lines: list[str] = []
    result = run(scenario.run(scripted(steps), voice_url=stack.urls.voice, auth_token=AUTH_TOKEN, out=lines.append))
    assert result.passed, explain(result)
    assert result.call.protocol_errors == []
    assert stack.gateway.error_frames == errors_before
    assert result.call.replies()[-1].text == HOURS


def test_partial_prompts_are_not_turns(stack: LocalStack) -> None:
    # Directly to the socket with partialPrompts on: cumulative last=false frames, then the final one.
    steps: list[dict[str, Any]] = [
        {"say": "Where exactly is the store located?", "partial": True, "expect": "Main Street"},
        {"hangup": True},
    ]
    result = run(scenario.run(scripted(steps), relay_url=stack.urls.relay, auth_token=AUTH_TOKEN, out=lambda _: None))
    assert result.passed, explain(result)
    [reply] = result.call.replies()
    assert reply.completed
    assert sum(1 for f in reply.frames if f.type == "text" and f.last) == 1  # one answer, not one per partial
