"""The simulated caller's pure parts: TwiML it follows, frames it accepts, scenario files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.caller import scenario, twiml
from local.caller.frames import ProtocolError, validate

RELAY_TWIML = """<?xml version="1.0" encoding="UTF-8"?>
<Response><Connect action="/action"><ConversationRelay url="ws://127.0.0.1:8765/local"
 welcomeGreeting="Hi" language="en-US" dtmfDetection="true" interruptible="any">
<Language code="es-ES" voice="es-ES-Chirp3-HD-Aoede"/><Parameter name="campaign" value="spring"/>
</ConversationRelay></Connect></Response>"""


def test_connect_with_conversation_relay() -> None:
    [connect] = twiml.parse(RELAY_TWIML)
    assert isinstance(connect, twiml.Connect)
    assert connect.action == "/action"
    assert connect.method == "POST"
    relay = connect.relay
    assert relay.url == "ws://127.0.0.1:8765/local"
    assert relay.welcome_greeting == "Hi"
    assert relay.flag("dtmfDetection") is True
    assert relay.interruptible == "any"
    assert relay.parameters == {"campaign": "spring"}
    assert relay.languages == ({"code": "es-ES", "voice": "es-ES-Chirp3-HD-Aoede"},)
    assert "url" not in relay.attributes


def test_handoff_and_hangup_documents() -> None:
    verbs = twiml.parse("<Response><Say>Please hold.</Say><Dial timeout='20'>+15555550100</Dial></Response>")
    assert verbs == [twiml.Say("Please hold."), twiml.Dial("+15555550100", "number", {"timeout": "20"})]
    [dial] = twiml.parse("<Response><Dial><Sip>sip:desk@example.com</Sip></Dial></Response>")
    assert dial == twiml.Dial("sip:desk@example.com", "sip", {})
    assert twiml.parse("<Response><Say>Bye</Say><Hangup/></Response>")[1] == twiml.Hangup()
    assert twiml.parse("<Response/>") == []
    assert twiml.describe(twiml.parse("<Response><Hangup/></Response>")) == "<Hangup/>"
    assert twiml.parse("<Response><Gather/></Response>") == [twiml.Unsupported("Gather")]


@pytest.mark.parametrize(
    "document",
    [
        "not xml",
        "<Html/>",
        "<Response><Connect/></Response>",
        "<Response><Dial/></Response>",
        "<Response><Connect><ConversationRelay/></Connect></Response>",
    ],
)
def test_documents_the_caller_cannot_follow(document: str) -> None:
    with pytest.raises(twiml.TwiMLError):
        twiml.parse(document)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "text", "token": "Hello", "last": False},
        {"type": "text", "token": "", "last": True, "lang": "en-US", "interruptible": True, "preemptible": False},
        {"type": "play", "source": "https://example.com/a.mp3", "loop": 0},
        {"type": "sendDigits", "digits": "9ww1#"},
        {"type": "language", "ttsLanguage": "es-ES"},
        {"type": "end"},
        {"type": "end", "handoffData": '{"reasonCode":"x"}'},
    ],
)
def test_valid_outbound_frames(frame: dict[str, object]) -> None:
    assert validate(json.dumps(frame)).data == frame


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"message": "Internal server error", "connectionId": "a=", "requestId": "b="}', "API Gateway error frame"),
        ('{"message": "Endpoint request timed out", "connectionId": "a=", "requestId": "b="}', "API Gateway"),
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"token": "hi"}', "no 'type'"),
        ('{"type": "speak", "token": "hi"}', "unknown type"),
        ('{"type": "text", "token": null}', "token must be a string"),
        ('{"type": "text", "token": "a", "last": "true"}', "last must be a boolean"),
        ('{"type": "text", "token": "a", "voice": "x"}', "unknown field"),
        ('{"type": "play", "source": "file:///etc/passwd"}', "source"),
        ('{"type": "sendDigits", "digits": "12a"}', "digits"),
        ('{"type": "language"}', "needs ttsLanguage"),
        ('{"type": "end", "handoffData": {"reasonCode": "x"}}', "handoffData must be a string"),
    ],
)
def test_invalid_frames_are_protocol_errors(raw: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        validate(raw)


def test_binary_frames_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="binary"):
        validate(b'{"type":"text","token":"x"}')


def test_every_shipped_scenario_loads() -> None:
    paths = sorted(scenario.SCENARIO_DIR.glob("*.toml"))
    assert [p.stem for p in paths if p.stem == "demo"] == ["demo"]
    for path in paths:
        loaded = scenario.load(path)
        assert loaded.steps, path


def test_the_demo_scenario_covers_what_the_issue_asks_for() -> None:
    demo = scenario.load(scenario.find("demo"))
    kinds = [s.kind for s in demo.steps]
    assert kinds.count("say") >= 3
    assert "dtmf" in kinds
    assert "drop" in kinds
    assert any(s.barge_in_after_chars for s in demo.steps)
    assert demo.steps[-1].expect_end
    assert demo.expect.outcome == "transferred"
    assert demo.expect.reconnects == 1
    # As on a phone, the caller hears the greeting out before speaking: setup warms the agent
    # meanwhile, so the demo's first turn shows what a real call's first turn costs.
    assert demo.greeting_s > 0


def test_scenario_files_are_validated_with_every_problem_listed() -> None:
    data = {
        "name": "bad",
        "colour": "red",
        "caller": {"greeting_s": -1, "think_s": "slow"},
        "step": [{"say": "hi", "dtmf": "1"}, {"dtmf": "12"}, {"wait": 100}, {"drop": "yes"}, {"say": "x", "volume": 3}],
        "expect": {"outcome": "happy"},
    }
    with pytest.raises(scenario.ScenarioError) as caught:
        scenario.parse(data)
    message = str(caught.value)
    for expected in (
        "colour",
        "exactly one of",
        "one key",
        "0..60",
        "drop = true",
        "'volume'",
        "outcome must be",
        "greeting_s must be",
        "think_s must be",
    ):
        assert expected in message


def test_a_minimal_scenario_and_find_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[[step]]\nsay = "Hello"\nexpect = "Hi"\n[[step]]\nhangup = true\n', encoding="utf-8")
    loaded = scenario.load(scenario.find(str(path)))
    assert loaded.name == "mine"
    assert loaded.steps[0].expect == ("Hi",)
    assert loaded.steps[1].kind == "hangup"
    assert loaded.greeting_s == 0.0  # tests and quick scenarios speak at once
    with pytest.raises(scenario.ScenarioError, match=r"known: .*demo"):
        scenario.find("no-such-scenario")


def test_the_caller_reads_failover_in_either_place_and_refuses_what_twilio_would() -> None:
    from local.caller.speech import Outage, backup, twiml_problem

    inside = twiml.parse(
        '<Response><Connect><ConversationRelay url="wss://x" language="en-US" voice="v">'
        '<Language code="en-US" voice="v"><Failover ttsProvider="Amazon" voice="Joanna-Neural"/></Language>'
        "</ConversationRelay></Connect></Response>"
    )[0]
    beside = twiml.parse(
        '<Response><Connect><ConversationRelay url="wss://x" language="en-US" voice="v">'
        '<Failover language="en-US" transcriptionProvider="Google" speechModel="telephony"/>'
        "</ConversationRelay></Connect></Response>"
    )[0]
    assert isinstance(inside, twiml.Connect) and isinstance(beside, twiml.Connect)
    assert backup(inside.relay, "en-US", "tts") == {"ttsProvider": "Amazon", "voice": "Joanna-Neural"}
    assert backup(inside.relay, "en-US", "stt") is None
    assert backup(beside.relay, "en-US", "stt") == {"transcriptionProvider": "Google", "speechModel": "telephony"}
    assert twiml_problem(inside.relay, Outage()) is None
    assert twiml_problem(inside.relay, Outage(failover_shapes=frozenset({"relay"}))) is not None
    assert twiml_problem(inside.relay, Outage(unavailable_voices={"v"})) == (
        "64101",
        "Invalid ConversationRelay parameter: voice",
    )
    odd = twiml.parse('<Response><Connect><ConversationRelay url="wss://x" speechTimeOut="9"/></Connect></Response>')
    assert isinstance(odd[0], twiml.Connect) and twiml_problem(odd[0].relay, Outage()) is not None
