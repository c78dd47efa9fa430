"""The webhook answers as the agent the number (or an explicit ``?agent=``) picks, and a transfer
carries its context to the person who takes it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TEST_AGENTS_DIR
from tests.integration.test_webhook import BASE, CALL, VOICE_FORM, Twilio, action_form, parse
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.loader import load_agents
from voice_agent.core.routing import Agents
from voice_agent.webhook.app import Dependencies, create_app

AGENTS = load_agents(TEST_AGENTS_DIR)
SALES = AGENTS.by_name["sales"]
FRONT = AGENTS.by_name["front_desk"]


@pytest.fixture
def twilio(store: DynamoSessionStore) -> Twilio:
    deps = Dependencies(store=lambda: store, agent=lambda: AGENTS.default, agents=lambda: AGENTS)
    return Twilio(TestClient(create_app(deps)))


def relay_of(doc: ET.Element) -> ET.Element:
    relay = doc.find("Connect/ConversationRelay")
    assert relay is not None
    return relay


def parameters(relay: ET.Element) -> dict[str, str | None]:
    return {p.get("name") or "": p.get("value") for p in relay.findall("Parameter")}


def test_each_number_reaches_its_agent(twilio: Twilio) -> None:
    sales = parse(twilio.post("/voice", {**VOICE_FORM, "To": "+15555550188"}))
    relay = relay_of(sales)
    assert relay.get("voice") == SALES.voice
    assert relay.get("welcomeGreeting") == SALES.lines.welcome_greeting
    assert parameters(relay)["agent"] == "sales"
    connect = sales.find("Connect")
    assert connect is not None and connect.get("action") == f"{BASE}/action?agent=sales"

    front = parse(twilio.post("/voice", {**VOICE_FORM, "To": "+15555550199"}))
    assert relay_of(front).get("welcomeGreeting") == FRONT.lines.welcome_greeting
    assert "agent" not in parameters(relay_of(front))  # the default agent: URLs as they always were


def test_an_unknown_number_reaches_the_default_agent(twilio: Twilio) -> None:
    doc = parse(twilio.post("/voice", {**VOICE_FORM, "To": "+15550009999"}))
    assert relay_of(doc).get("welcomeGreeting") == FRONT.lines.welcome_greeting


def test_an_outbound_call_picks_its_agent_explicitly(twilio: Twilio) -> None:
    outbound = {**VOICE_FORM, "Direction": "outbound-api", "From": "+15555550199", "To": "+15551234567"}
    doc = parse(twilio.post("/voice", outbound, query="agent=sales"))
    assert relay_of(doc).get("welcomeGreeting") == SALES.lines.welcome_greeting
    machine = parse(twilio.post("/voice", {**outbound, "AnsweredBy": "machine_end_beep"}, query="agent=sales"))
    say = machine.find("Say")
    assert say is not None and say.text == SALES.lines.voicemail


def test_action_answers_as_the_agent_of_the_call(twilio: Twilio) -> None:
    handoff = json.dumps({"reasonCode": "handoff", "reason": "Wants a bulk quote", "summary": "Sam, 40 ladders."})
    doc = parse(twilio.post("/action", action_form("ended", HandoffData=handoff), query="agent=sales"))
    number = doc.find("Dial/Number")
    assert number is not None and number.text == SALES.transfer_target
    dial = doc.find("Dial")
    assert dial is not None and dial.get("action") == f"{BASE}/dial-status?agent=sales"
    goodbye = parse(twilio.post("/action", action_form("ended"), query="agent=sales"))
    say = goodbye.find("Say")
    assert say is not None and say.text == SALES.lines.goodbye


def test_the_transfer_carries_its_reason_and_summary_to_the_person(twilio: Twilio) -> None:
    handoff = json.dumps({"reasonCode": "handoff", "reason": "Wants a bulk quote", "summary": "Sam, 40 ladders."})
    doc = parse(twilio.post("/action", action_form("ended", HandoffData=handoff), query="agent=sales"))
    number = doc.find("Dial/Number")
    assert number is not None
    url = number.get("url") or ""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE}/whisper"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {"agent": "sales", "reason": "Wants a bulk quote", "summary": "Sam, 40 ladders."}
    # Twilio fetches the whisper URL when the person answers and plays it to them alone.
    whisper = parse(twilio.post("/whisper", {"CallSid": "CA" + "9" * 32, "ParentCallSid": CALL}, query=parts.query))
    said = whisper.find("Say")
    assert said is not None
    assert said.text == "Sales transfer from Sal. Wants a bulk quote. Sam, 40 ladders."


def test_a_sip_target_gets_the_context_as_headers(store: DynamoSessionStore) -> None:
    import dataclasses

    pbx = dataclasses.replace(SALES, transfer_target="sip:desk@pbx.example.com")
    agents = Agents.single(pbx)
    app = create_app(Dependencies(store=lambda: store, agent=lambda: pbx, agents=lambda: agents))
    handoff = json.dumps({"reasonCode": "handoff", "reason": "Quote & delivery", "summary": "Sam"})
    doc = parse(Twilio(TestClient(app)).post("/action", action_form("ended", HandoffData=handoff)))
    sip = doc.find("Dial/Sip")
    assert sip is not None
    assert sip.text == "sip:desk@pbx.example.com?X-Handoff-Reason=Quote%20%26%20delivery&X-Handoff-Summary=Sam"


def test_the_model_gives_the_transfer_a_reason_and_a_summary() -> None:
    from voice_agent.core.builtin_tools import transfer_to_human
    from voice_agent.core.tools import EndSession, ToolContext

    ctx = ToolContext(call_sid=CALL, connection_id="c1", direction="inbound", language=None, agent=SALES)
    result = transfer_to_human.invoke(json.dumps({"reason": "Wants a quote", "summary": "Sam, 40 ladders."}), ctx)
    end = result.effects[0]
    assert isinstance(end, EndSession) and end.handoff is not None
    assert end.handoff["reason"] == "Wants a quote"
    assert end.handoff["summary"] == "Sam, 40 ladders."
