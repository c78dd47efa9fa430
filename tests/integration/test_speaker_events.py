"""``end`` goes out once the last line has been spoken, as Twilio's speaker events say (``info``
``agentSpeaking`` ``off``), instead of after the 2.5-words-a-second estimate; the estimate stays
the fallback when the events are off or do not come (core/ending.py). Real clocks, moto's table."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

from tests.integration.test_turn_engine import budget
from tests.support.fakes import RecordingSender, ScriptedModel
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT, AgentConfig, Lines
from voice_agent.agent.relay_options import RelayOptions
from voice_agent.core.relay import Relay
from voice_agent.core.turn_engine import TurnEngine
from voice_agent.protocol.outbound import End
from voice_agent.wiring import tool_registry

CALL = "CA" + "6" * 32
LINE = "One moment please."  # 3 words: the estimate plays it for 1.7 s; an "off" counts after 0.5 s
AGENT_SHORT = dataclasses.replace(AGENT, lines=dataclasses.replace(AGENT.lines, handoff=LINE))


def relay_for(store: DynamoSessionStore, sender: RecordingSender, agent: AgentConfig) -> Relay:
    model = ScriptedModel()
    engine = TurnEngine(store=store, sender=sender, model=lambda: model, agent=agent, tools=tool_registry())
    relay = Relay(store=store, engine=engine, sender=sender, agent=agent, warm_model=model.warm)
    relay.handle("c1", json.dumps({"type": "setup", "sessionId": "VX1", "callSid": CALL}), budget())
    return relay


def off() -> str:
    return json.dumps({"type": "info", "name": "agentSpeaking", "value": "off"})


class Handoff:
    """The caller presses the human key; the turn says the line and ends the session."""

    def __init__(self, relay: Relay, sender: RecordingSender) -> None:
        self.sender = sender
        self.started = time.monotonic()
        self.end_at: float | None = None
        sender.on_send = self._on_send
        self.thread = threading.Thread(
            target=relay.handle, args=("c1", json.dumps({"type": "dtmf", "digit": "0"}), budget())
        )
        self.thread.start()

    def _on_send(self, connection_id: str, message: object) -> None:
        if isinstance(message, End) and self.end_at is None:
            self.end_at = time.monotonic() - self.started

    def finish(self) -> float:
        self.thread.join(15)
        assert not self.thread.is_alive()
        assert len(self.sender.ends("c1")) == 1  # exactly one end, whoever sent it
        assert self.end_at is not None
        return self.end_at


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


def test_end_goes_out_on_the_speaker_event_not_after_the_estimate(
    store: DynamoSessionStore, sender: RecordingSender
) -> None:
    relay = relay_for(store, sender, AGENT_SHORT)
    handoff = Handoff(relay, sender)
    time.sleep(0.8)
    relay.handle("c1", off(), budget())
    end_at = handoff.finish()
    assert 0.8 <= end_at < 1.3  # the estimate would have waited 1.7 s
    assert json.loads(sender.ends("c1")[0].handoff_data or "{}")["reasonCode"] == "dtmf-transfer"


def test_an_off_before_the_line_could_start_is_not_its_end(store: DynamoSessionStore, sender: RecordingSender) -> None:
    relay = relay_for(store, sender, AGENT_SHORT)
    handoff = Handoff(relay, sender)
    time.sleep(0.2)
    relay.handle("c1", off(), budget())  # the end of speech before the line, not of the line
    time.sleep(0.5)
    assert handoff.end_at is None
    relay.handle("c1", off(), budget())
    assert 0.7 <= handoff.finish() < 1.2


def test_without_speaker_events_the_estimate_decides(store: DynamoSessionStore, sender: RecordingSender) -> None:
    agent = dataclasses.replace(AGENT_SHORT, relay=RelayOptions(debug=()))
    relay = relay_for(store, sender, agent)
    end_at = Handoff(relay, sender).finish()  # Twilio sends no speaker events: the estimate, as before
    assert 1.5 <= end_at < 2.5


def test_when_the_events_do_not_come_the_turn_ends_the_session_after_a_grace(
    store: DynamoSessionStore, sender: RecordingSender
) -> None:
    relay = relay_for(store, sender, AGENT_SHORT)
    end_at = Handoff(relay, sender).finish()
    assert 2.0 <= end_at < 6.0  # later than the estimate, bounded


def test_lines_for_the_default_agent_come_with_speaker_events_on() -> None:
    assert "speaker-events" in AGENT.relay.debug
    assert isinstance(AGENT.lines, Lines)
