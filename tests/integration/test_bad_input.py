"""Property-based: no inbound frame, however wrong, raises out of the message handler or makes the
agent send anything invalid; valid frames after garbage still work."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.events import FakeLambdaContext, message_event, relay_frame
from tests.support.fakes import RecordingSender, ScriptedModel
from tests.support.frame_strategies import FIELDS, KNOWN_TYPES, json_values
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT
from voice_agent.core.relay import Relay
from voice_agent.core.turn_engine import TurnEngine
from voice_agent.entry import ws_message
from voice_agent.wiring import tool_registry

messages = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES) | st.text(max_size=12) | json_values},
    optional=dict.fromkeys(FIELDS, json_values),
)
huge = st.integers(min_value=1, max_value=200_000).map(
    lambda n: json.dumps({"type": "prompt", "voicePrompt": "a" * n, "last": False})
)
frames = st.one_of(
    messages.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    huge,
    st.none(),
)


@pytest.fixture
def harness(store: DynamoSessionStore) -> tuple[Relay, RecordingSender, ScriptedModel]:
    sender, model = RecordingSender(), ScriptedModel()
    engine = TurnEngine(store=store, sender=sender, model=lambda: model, agent=AGENT, tools=tool_registry())
    relay = Relay(store=store, engine=engine, sender=sender, agent=AGENT, warm_model=model.warm)
    return relay, sender, model


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames)
def test_no_frame_breaks_the_handler(
    harness: tuple[Relay, RecordingSender, ScriptedModel], caplog: pytest.LogCaptureFixture, frame: Any
) -> None:
    relay, sender, _ = harness
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        response = ws_message.handler(message_event("fuzz", frame), FakeLambdaContext(), relay=relay)
    assert response == {"statusCode": 200}
    assert "message handler failed" not in caplog.text
    # Whatever it sent (a reply to an accidental valid prompt), RecordingSender validated it.
    assert all(conn == "fuzz" for conn, _ in sender.messages)


def test_valid_frames_after_garbage_still_work(harness: tuple[Relay, RecordingSender, ScriptedModel]) -> None:
    relay, sender, model = harness
    garbage: list[Any] = [
        b"\x00\xff",
        "{",
        "[]",
        '{"type": null}',
        '{"type": "prompt", "voicePrompt": {}}',
        json.dumps({"type": "setup"}),
        "x" * 300_000,
        None,
    ]
    for frame in garbage:
        ws_message.handler(message_event("c9", frame), FakeLambdaContext(), relay=relay)
    assert sender.messages == []
    model.say("Still here.")
    ws_message.handler(message_event("c9", relay_frame("setup", callSid="CA9")), FakeLambdaContext(), relay=relay)
    ws_message.handler(
        message_event("c9", relay_frame("prompt", voicePrompt="Hello?")), FakeLambdaContext(), relay=relay
    )
    assert sender.spoken("c9") == "Still here."
