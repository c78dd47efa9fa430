"""The webhook app: signatures, TwiML for inbound and outbound calls, every /action path."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TEST_ENV
from tests.support.events import FakeLambdaContext
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT, AgentConfig
from voice_agent.call_tokens import derive_key, token_for
from voice_agent.errors import StoreUnavailableError
from voice_agent.protocol.inbound import Setup
from voice_agent.signatures import sign
from voice_agent.webhook.app import Dependencies, create_app

BASE = TEST_ENV["WEBHOOK_PUBLIC_URL"]
TOKEN = TEST_ENV["TWILIO_AUTH_TOKEN"]
CALL = "CA" + "1" * 32
VOICE_FORM = {
    "CallSid": CALL,
    "AccountSid": "AC" + "0" * 32,
    "From": "+15551230001",
    "To": "+15551230002",
    "Direction": "inbound",
    "CallStatus": "ringing",
}


class Twilio:
    """Posts forms the way Twilio does: form-encoded and signed over the public URL."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(
        self, path: str, form: dict[str, str], *, query: str = "", signature: str | None = "sign", token: str = TOKEN
    ) -> Any:
        url = f"{BASE}{path}" + (f"?{query}" if query else "")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature == "sign":
            headers["X-Twilio-Signature"] = sign(token, url, form)
        elif signature is not None:
            headers["X-Twilio-Signature"] = signature
        return self.client.post(path + (f"?{query}" if query else ""), content=urlencode(form), headers=headers)


def make_twilio(store: DynamoSessionStore, agent: AgentConfig = AGENT) -> Twilio:
    app = create_app(Dependencies(store=lambda: store, agent=lambda: agent))
    return Twilio(TestClient(app))


@pytest.fixture
def twilio(store: DynamoSessionStore) -> Twilio:
    return make_twilio(store)


def parse(response: Any) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ET.fromstring(response.text)  # noqa: S314 (our own server's output)


def action_form(status: str, call_status: str = "in-progress", **extra: str) -> dict[str, str]:
    return {"CallSid": CALL, "CallStatus": call_status, "SessionId": "VX1", "SessionStatus": status, **extra}


# -- /voice ---------------------------------------------------------------------------------------


def test_voice_connects_the_call_to_the_relay(twilio: Twilio, store: DynamoSessionStore) -> None:
    doc = parse(twilio.post("/voice", VOICE_FORM, query="purpose=support&bad-name=x&callToken=forged"))
    connect = doc.find("Connect")
    assert connect is not None
    assert connect.get("action") == f"{BASE}/action"
    relay = connect.find("ConversationRelay")
    assert relay is not None
    url = urlsplit(relay.get("url") or "")
    # the socket URL names the call and its token (names sorted, so a signature over it can be rebuilt)
    assert url._replace(query="").geturl() == TEST_ENV["RELAY_PUBLIC_URL"]
    assert url.query == f"callSid={CALL}&callToken={token_for(derive_key(TOKEN), CALL)}&session=0"
    assert relay.get("welcomeGreeting") == AGENT.lines.welcome_greeting
    for attr, value in {
        "language": AGENT.language,
        "ttsProvider": AGENT.tts_provider,
        "voice": AGENT.voice,
        "transcriptionProvider": AGENT.transcription_provider,
        "speechModel": AGENT.speech_model,
        "interruptible": "any",
        "dtmfDetection": "true",
    }.items():
        assert relay.get(attr) == value, attr
    assert relay.get("applicationReconnect") == "true"  # on by default
    assert [lang.get("code") for lang in relay.findall("Language")] == [o.code for o in AGENT.languages]
    params = {p.get("name"): p.get("value") for p in relay.findall("Parameter")}
    call = store.get_call(CALL)
    assert call is not None and call.call_token == token_for(derive_key(TOKEN), CALL)
    # name-checked: "bad-name" dropped; the call's token is the webhook's own, never the query's
    assert params == {"purpose": "support", "callToken": call.call_token}
    assert doc.find("Start") is None  # no recording unless configured


def test_a_retried_voice_webhook_repeats_the_calls_token_and_a_resume_carries_it(twilio: Twilio) -> None:
    def token(doc: ET.Element) -> str | None:
        return next((p.get("value") for p in doc.iter("Parameter") if p.get("name") == "callToken"), None)

    first = token(parse(twilio.post("/voice", VOICE_FORM)))
    assert first is not None
    assert token(parse(twilio.post("/voice", VOICE_FORM))) == first
    resumed = parse(twilio.post("/action", action_form("failed", ErrorCode="64105")))
    assert token(resumed) == first


def test_outbound_calls_get_the_same_agent_and_machines_get_a_message(twilio: Twilio) -> None:
    outbound = {**VOICE_FORM, "Direction": "outbound-api", "CallStatus": "in-progress"}
    assert parse(twilio.post("/voice", outbound)).find("Connect") is not None
    doc = parse(twilio.post("/voice", {**outbound, "AnsweredBy": "machine_start"}))
    say = doc.find("Say")
    assert say is not None and say.text == AGENT.lines.voicemail
    assert doc.find("Hangup") is not None
    assert doc.find("Connect") is None


def test_recording_and_application_reconnect_are_configurable(store: DynamoSessionStore) -> None:
    agent = dataclasses.replace(
        AGENT, record_call=True, application_reconnect=True, extra_relay_attributes={"speechTimeout": "1200"}
    )
    doc = parse(make_twilio(store, agent).post("/voice", VOICE_FORM))
    children = [c.tag for c in doc]
    assert children == ["Start", "Connect"]  # <Start><Recording> must come before <Connect>
    start = doc.find("Start")
    assert start is not None and start.find("Recording") is not None
    relay = doc.find("Connect/ConversationRelay")
    assert relay is not None
    assert relay.get("applicationReconnect") == "true"
    assert relay.get("speechTimeout") == "1200"


@pytest.mark.parametrize("path", ["/voice", "/action", "/dial-status"])
def test_unsigned_and_forged_requests_are_refused_without_detail(twilio: Twilio, path: str) -> None:
    form = {**VOICE_FORM, **action_form("completed")}
    for response in (
        twilio.post(path, form, signature=None),
        twilio.post(path, form, signature="forged"),
        twilio.post(path, form, token="another-accounts-token"),
    ):
        assert response.status_code == 403
        assert response.content == b""


def test_a_replayed_signature_does_not_cover_other_fields(twilio: Twilio) -> None:
    good = sign(TOKEN, f"{BASE}/voice", VOICE_FORM)
    tampered = {**VOICE_FORM, "From": "+15550009999"}
    assert twilio.post("/voice", tampered, signature=good).status_code == 403
    assert twilio.post("/voice", VOICE_FORM, signature=good).status_code == 200


def test_the_signed_url_includes_the_query_string(twilio: Twilio) -> None:
    wrong = sign(TOKEN, f"{BASE}/voice", VOICE_FORM)  # signed without the query Twilio dialed
    assert twilio.post("/voice", VOICE_FORM, query="purpose=x", signature=wrong).status_code == 403
    assert twilio.post("/voice", VOICE_FORM, query="purpose=x").status_code == 200


def test_bad_requests(twilio: Twilio) -> None:
    client = twilio.client
    assert client.post("/voice", json=VOICE_FORM).status_code == 415
    big = urlencode({**VOICE_FORM, "Junk": "x" * 40_000})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/voice", content=big, headers=headers).status_code == 413
    no_sid = {k: v for k, v in VOICE_FORM.items() if k != "CallSid"}
    assert twilio.post("/voice", no_sid).status_code == 400
    assert twilio.post("/voice", {**VOICE_FORM, "CallSid": "not-a-sid"}).status_code == 400


def test_local_development_without_a_token_warns_and_accepts(
    store: DynamoSessionStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from voice_agent import wiring

    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    wiring.reset()
    twilio = make_twilio(store)
    assert twilio.post("/voice", VOICE_FORM, signature=None).status_code == 200
    assert "SIGNATURES ARE NOT CHECKED" in caplog.text


# -- /action --------------------------------------------------------------------------------------


def test_caller_hung_up_marks_the_call_ended(twilio: Twilio, store: DynamoSessionStore) -> None:
    store.bind_connection("c1", Setup(session_id="VX1", call_sid=CALL))
    doc = parse(twilio.post("/action", action_form("completed", call_status="completed", SessionDuration="42")))
    assert list(doc) == []
    call = store.get_call(CALL)
    assert call is not None and call.status == "completed"


def test_handoff_dials_the_transfer_target_after_a_line(twilio: Twilio) -> None:
    handoff = json.dumps({"reasonCode": "live-agent-handoff", "reason": "wants a refund"})
    doc = parse(twilio.post("/action", action_form("ended", HandoffData=handoff)))
    assert [c.tag for c in doc] == ["Say", "Dial"]
    dial = doc.find("Dial")
    assert dial is not None
    assert dial.get("action") == f"{BASE}/dial-status"
    number = dial.find("Number")
    assert number is not None and number.text == AGENT.transfer_target


def test_handoff_to_a_sip_address(store: DynamoSessionStore) -> None:
    agent = dataclasses.replace(AGENT, transfer_target="sip:desk@pbx.example.com")
    doc = parse(make_twilio(store, agent).post("/action", action_form("ended", HandoffData="not json")))
    sip = doc.find("Dial/Sip")
    # The handoff's reason travels as a SIP header (docs/agents.md, "Handoff context").
    assert sip is not None and sip.text == "sip:desk@pbx.example.com?X-Handoff-Reason=not%20json"


@pytest.mark.parametrize(
    ("dial_status", "fallback"), [("completed", False), ("no-answer", True), ("busy", True), ("failed", True)]
)
def test_what_happens_after_the_dial(twilio: Twilio, dial_status: str, fallback: bool) -> None:
    doc = parse(twilio.post("/dial-status", {"CallSid": CALL, "DialCallStatus": dial_status}))
    said = [s.text for s in doc.findall("Say")]
    assert said == ([AGENT.lines.transfer_failed] if fallback else [])
    assert doc.find("Hangup") is not None


def test_ended_without_handoff_says_goodbye_once(twilio: Twilio, store: DynamoSessionStore) -> None:
    store.bind_connection("c1", Setup(session_id="VX1", call_sid=CALL))
    doc = parse(twilio.post("/action", action_form("ended")))
    assert [s.text for s in doc.findall("Say")] == [AGENT.lines.goodbye]
    assert doc.find("Hangup") is not None
    store.mark_farewell(CALL)  # the agent already said goodbye on the socket (end_call tool)
    doc = parse(twilio.post("/action", action_form("ended")))
    assert doc.findall("Say") == []
    assert doc.find("Hangup") is not None


def test_a_dropped_socket_resumes_the_same_call_until_the_cap(twilio: Twilio, store: DynamoSessionStore) -> None:
    store.bind_connection("c1", Setup(session_id="VX1", call_sid=CALL, custom_parameters={"purpose": "support"}))

    def failed(session: int) -> dict[str, str]:  # each relay session has its own SessionId
        return action_form("failed", ErrorCode="64105", ErrorMessage="Websocket ended", SessionId=f"VX{session}")

    for attempt in range(1, AGENT.max_reconnect_attempts + 1):
        doc = parse(twilio.post("/action", failed(attempt)))
        relay = doc.find("Connect/ConversationRelay")
        assert relay is not None, attempt
        assert relay.get("welcomeGreeting") == AGENT.lines.reconnect_greeting
        params = {p.get("name"): p.get("value") for p in relay.findall("Parameter")}
        # no /voice stored a token for this call: the derived one names it all the same
        token = token_for(derive_key(TOKEN), CALL)
        assert params == {"purpose": "support", "reconnectAttempt": str(attempt), "callToken": token}
        assert (relay.get("url") or "").endswith(f"callToken={token}&session={attempt}")
    doc = parse(twilio.post("/action", failed(AGENT.max_reconnect_attempts + 1)))  # past the cap: a person
    assert doc.find("Connect") is None
    assert doc.find("Dial") is not None


def test_a_session_the_agent_ended_for_a_restart_resumes_the_call(twilio: Twilio, store: DynamoSessionStore) -> None:
    from voice_agent.core.call_flow import SESSION_RESTART_REASON

    restart = json.dumps({"reasonCode": SESSION_RESTART_REASON, "reason": "The session could not be stored"})
    doc = parse(twilio.post("/action", action_form("ended", HandoffData=restart)))
    relay = doc.find("Connect/ConversationRelay")
    assert relay is not None  # a new socket, not a transfer
    assert relay.get("welcomeGreeting") == AGENT.lines.reconnect_greeting
    call = store.get_call(CALL)
    assert call is not None and call.reconnects == 1  # counted against the cap like a drop


def test_a_replayed_action_callback_gets_the_same_answer_and_counts_once(
    twilio: Twilio, store: DynamoSessionStore
) -> None:
    # Twilio's signature has no timestamp: a captured callback (or Twilio retrying one) replays
    # with a valid signature. It must not spend the call's reconnect budget a second time.
    store.bind_connection("c1", Setup(session_id="VX1", call_sid=CALL))
    failed = action_form("failed", ErrorCode="64105", ErrorMessage="Websocket ended")
    first = twilio.post("/action", failed)
    assert parse(first).find("Connect") is not None
    for _ in range(AGENT.max_reconnect_attempts + 1):
        assert twilio.post("/action", failed).text == first.text
    call = store.get_call(CALL)
    assert call is not None and call.reconnects == 1
    # The next session's own drop is counted.
    doc = parse(twilio.post("/action", {**failed, "SessionId": "VX2"}))
    params = {p.get("name"): p.get("value") for p in doc.findall("Connect/ConversationRelay/Parameter")}
    assert params["reconnectAttempt"] == "2"


def test_past_the_cap_can_be_a_goodbye(store: DynamoSessionStore) -> None:
    agent = dataclasses.replace(AGENT, max_reconnect_attempts=0, after_reconnect_limit="goodbye")
    doc = parse(make_twilio(store, agent).post("/action", action_form("failed", ErrorCode="64105")))
    assert [s.text for s in doc.findall("Say")] == [AGENT.lines.goodbye]


def test_store_down_during_a_failure_transfers(store: DynamoSessionStore) -> None:
    class Down:
        def __getattr__(self, name: str) -> Any:
            def fail(*_: object, **__: object) -> None:
                raise StoreUnavailableError(name)

            return fail

    app = create_app(Dependencies(store=lambda: cast(DynamoSessionStore, Down()), agent=lambda: AGENT))
    doc = parse(Twilio(TestClient(app)).post("/action", action_form("failed", ErrorCode="64105")))
    assert doc.find("Dial") is not None
    restart = json.dumps({"reasonCode": "session-restart", "reason": "The session could not be stored"})
    doc = parse(Twilio(TestClient(app)).post("/action", action_form("ended", HandoffData=restart)))
    assert doc.find("Dial") is not None  # still down: a person, not a reconnect loop


def test_an_unexpected_error_on_action_still_hands_the_caller_to_a_person() -> None:
    def broken_store() -> DynamoSessionStore:
        raise RuntimeError("boom")

    app = create_app(Dependencies(store=broken_store, agent=lambda: AGENT))
    client = TestClient(app, raise_server_exceptions=False)
    doc = parse(Twilio(client).post("/action", action_form("failed")))
    assert doc.find("Dial") is not None


# -- the Lambda entry point (Mangum behind an HTTP API) -------------------------------------------


@pytest.fixture
def http_api_event() -> dict[str, Any]:
    path = Path(__file__).parent.parent / "fixtures" / "events" / "http_api_voice.json"
    event: dict[str, Any] = json.loads(path.read_text())
    return event


def test_the_lambda_handler_serves_the_same_app(http_api_event: dict[str, Any], dynamodb: object) -> None:
    from voice_agent.entry import webhook

    body = urlencode(VOICE_FORM)
    event = copy.deepcopy(http_api_event)
    event["body"] = base64.b64encode(body.encode()).decode()
    event["headers"]["content-length"] = str(len(body))
    event["headers"]["x-twilio-signature"] = sign(TOKEN, f"{BASE}/voice", VOICE_FORM)
    context = cast(Any, FakeLambdaContext())
    response = webhook.handler(event, context)
    assert response["statusCode"] == 200
    assert "<ConversationRelay" in response["body"]
    event["headers"]["x-twilio-signature"] = "forged"
    assert webhook.handler(event, context)["statusCode"] == 403


@pytest.mark.parametrize("tool", ["transfer_to_human", "end_call"])
def test_a_session_ended_by_a_tool_is_finished_by_the_action_handler(
    twilio: Twilio, store: DynamoSessionStore, tool: str
) -> None:
    """End to end through the turn engine: the tool's `end` frame, then Twilio's callback."""
    from tests.support.fakes import RecordingSender, ScriptedModel, ScriptedReply
    from voice_agent.core.budget import Budget, SystemClock
    from voice_agent.core.model import ToolCall
    from voice_agent.core.turn_engine import TurnEngine
    from voice_agent.protocol.outbound import End
    from voice_agent.wiring import tool_registry

    class NoSleep(SystemClock):
        def sleep(self, seconds: float) -> None:
            return None

    store.bind_connection("c1", Setup(session_id="VX1", call_sid=CALL))
    args = json.dumps({"reason": "The caller asked for a person"} if tool == "transfer_to_human" else {})
    model = ScriptedModel(replies=[ScriptedReply(tool_calls=(ToolCall(id="t1", name=tool, arguments=args),))])
    sender = RecordingSender()
    engine = TurnEngine(
        store=store, sender=sender, model=lambda: model, agent=AGENT, tools=tool_registry(), clock=NoSleep()
    )
    assert (
        engine.run_prompt("c1", "bye" if tool == "end_call" else "a person please", Budget.start(NoSleep(), 10)).status
        == "ended"
    )
    end = sender.for_connection("c1")[-1]
    assert isinstance(end, End)
    form = action_form("ended")
    if end.handoff_data is not None:
        assert json.loads(end.handoff_data)["reasonCode"] == "live-agent-handoff"
        form["HandoffData"] = end.handoff_data
    doc = parse(twilio.post("/action", form))
    if tool == "transfer_to_human":
        assert doc.find("Dial/Number") is not None
    else:
        assert doc.findall("Say") == []  # the goodbye was already spoken on the socket
        assert doc.find("Hangup") is not None
