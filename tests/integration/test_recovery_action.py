"""/action reads ErrorCode (core/recovery.py): one test per row of the table, through the webhook
app and a moto table, plus <Failover> per language, <Say> in the call's language and one recording
per call."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from tests.integration.test_webhook import CALL, VOICE_FORM, Twilio, action_form, make_twilio, parse
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT, AgentConfig
from voice_agent.core.speech_plan import SpeechPlan
from voice_agent.protocol.inbound import Setup

ENGLISH, SPANISH = AGENT.languages


class Metrics:
    def __init__(self) -> None:
        self.out = io.StringIO()

    def count(self, name: str) -> int:
        total = 0
        for line in self.out.getvalue().splitlines():
            if '"_aws"' in line:
                value = json.loads(line).get(name, 0)
                total += int(sum(value) if isinstance(value, list) else value)
        return total


@contextlib.contextmanager
def emitted_metrics() -> Iterator[Metrics]:
    metrics = Metrics()
    with contextlib.redirect_stdout(metrics.out):
        yield metrics


assert ENGLISH.backups.tts is not None and ENGLISH.backups.stt is not None
assert SPANISH.backups.tts is not None and SPANISH.backups.stt is not None


@pytest.fixture
def twilio(store: DynamoSessionStore) -> Twilio:
    twilio = make_twilio(store, dataclasses.replace(AGENT, record_call=True))
    parse(twilio.post("/voice", VOICE_FORM))
    store.bind_connection("c1", Setup(session_id="VX1", call_sid=CALL, custom_parameters=_token(store)))
    return twilio


def _token(store: DynamoSessionStore) -> dict[str, str]:
    call = store.get_call(CALL)
    assert call is not None and call.call_token
    return {"callToken": call.call_token}


def relay_of(doc: ET.Element) -> ET.Element:
    relay = doc.find("Connect/ConversationRelay")
    assert relay is not None, ET.tostring(doc)
    return relay


def fail(twilio: Twilio, session: str, code: str | None, message: str = "") -> ET.Element:
    extra = {"SessionId": session, "ErrorMessage": message}
    if code is not None:
        extra["ErrorCode"] = code
    return parse(twilio.post("/action", action_form("failed", **extra)))


def speech(relay: ET.Element) -> tuple[str | None, ...]:
    return tuple(relay.get(a) for a in ("ttsProvider", "voice", "transcriptionProvider", "speechModel"))


PRIMARY = (ENGLISH.tts_provider, ENGLISH.voice, ENGLISH.transcription_provider, ENGLISH.speech_model)


@pytest.mark.parametrize(("code", "message"), [("64105", "Websocket ended"), ("39001", "Network error")])
def test_a_socket_that_ended_resumes_on_the_same_configuration(twilio: Twilio, code: str, message: str) -> None:
    doc = fail(twilio, "VX1", code, message)
    relay = relay_of(doc)
    assert speech(relay) == PRIMARY
    assert relay.get("welcomeGreeting") == AGENT.lines.reconnect_greeting
    assert relay.find("Language/Failover") is not None  # Twilio may still fail over by itself
    assert doc.find("Start") is None  # the call's recording started at /voice; a resume starts none


def test_a_speech_recognition_failure_resumes_on_the_backup_transcription(twilio: Twilio) -> None:
    relay = relay_of(fail(twilio, "VX1", "64114", "ASR provider connection error"))
    stt = ENGLISH.backups.stt
    assert stt is not None
    assert speech(relay) == (ENGLISH.tts_provider, ENGLISH.voice, stt.provider, stt.speech_model)
    english = relay.find("Language[@code='en-US']")
    assert english is not None and english.get("transcriptionProvider") == stt.provider
    failover = english.find("Failover")
    # the TTS backup is still Twilio's to use; STT is on its backup already (no backup of a backup)
    assert failover is not None and failover.get("ttsProvider") == "Amazon" and failover.get("speechModel") is None


def test_a_tts_failure_resumes_on_the_backup_voice_and_provider(twilio: Twilio) -> None:
    relay = relay_of(fail(twilio, "VX1", "64199", "ConversationRelay: TTS provider connection error"))
    tts = ENGLISH.backups.tts
    assert tts is not None
    assert speech(relay) == (tts.provider, tts.voice, ENGLISH.transcription_provider, ENGLISH.speech_model)


def test_backups_are_cumulative_over_the_call_and_the_history_carries_over(
    twilio: Twilio, store: DynamoSessionStore
) -> None:
    fail(twilio, "VX1", "64114")
    relay = relay_of(fail(twilio, "VX2", None, "text-to-speech provider unavailable"))
    tts, stt = ENGLISH.backups.tts, ENGLISH.backups.stt
    assert tts is not None and stt is not None
    assert speech(relay) == (tts.provider, tts.voice, stt.provider, stt.speech_model)
    assert relay.find("Language[@code='en-US']/Failover") is None  # nothing left to fail over to
    params = {p.get("name"): p.get("value") for p in relay.findall("Parameter")}
    assert params["callToken"] == _token(store)["callToken"] and params["reconnectAttempt"] == "2"


@pytest.mark.parametrize("code", ["64101", "64106"])
def test_a_refused_configuration_resumes_once_known_good_then_goes_to_a_person(twilio: Twilio, code: str) -> None:
    with emitted_metrics() as metrics:
        first = relay_of(fail(twilio, "VX1", code, "Invalid ConversationRelay parameter"))
        # known-good: the call's language only, no <Failover>, no optional attributes
        assert [lang.get("code") for lang in first.findall("Language")] == ["en-US"]
        assert first.find("Language/Failover") is None
        assert first.get("debug") is None and first.get("events") is None
        assert speech(first) == PRIMARY
        again = fail(twilio, "VX2", code, "Invalid ConversationRelay parameter")  # never the same TwiML again
        assert again.find("Connect") is None and again.find("Dial") is not None
        # a replay of the same callback gets the same answer and counts nothing more
        assert ET.tostring(fail(twilio, "VX2", code)) == ET.tostring(again)
    assert metrics.count("ConfigurationErrors") == 2  # the original and the replay's answer
    assert metrics.count("Reconnects") == 1


def test_unknown_codes_keep_the_behaviour_before_the_table(twilio: Twilio) -> None:
    relay = relay_of(fail(twilio, "VX1", "64199", "Something went wrong"))
    assert speech(relay) == PRIMARY
    assert relay.find("Language/Failover") is not None


def test_the_reconnect_cap_stays_per_call_whatever_failed(twilio: Twilio) -> None:
    fail(twilio, "VX1", "64114")
    fail(twilio, "VX2", "64105")
    third = fail(twilio, "VX3", None, "TTS provider error")
    assert third.find("Connect") is None and third.find("Dial") is not None


def test_failover_content_per_language(store: DynamoSessionStore) -> None:
    relay = relay_of(parse(make_twilio(store).post("/voice", VOICE_FORM)))
    for option in AGENT.languages:
        failover = relay.find(f"Language[@code='{option.code}']/Failover")
        assert failover is not None, option.code
        tts, stt = option.backups.tts, option.backups.stt
        assert tts is not None and stt is not None
        assert dict(failover.attrib) == {
            "ttsProvider": tts.provider,
            "voice": tts.voice,
            "transcriptionProvider": stt.provider,
            "speechModel": stt.speech_model,
        }


def test_failover_placement_is_configurable(store: DynamoSessionStore) -> None:
    relay = relay_of(
        parse(make_twilio(store, dataclasses.replace(AGENT, failover_twiml="relay")).post("/voice", VOICE_FORM))
    )
    assert relay.find("Language/Failover") is None
    assert [f.get("language") for f in relay.findall("Failover")] == ["en-US", "es-ES"]
    off = relay_of(
        parse(make_twilio(store, dataclasses.replace(AGENT, failover_twiml="off")).post("/voice", VOICE_FORM))
    )
    assert off.find(".//Failover") is None


def test_a_call_switched_to_spanish_resumes_in_spanish_and_hears_say_lines_in_spanish(
    twilio: Twilio, store: DynamoSessionStore
) -> None:
    from voice_agent.core.model import TurnTicket

    store.set_language(TurnTicket(connection_id="c1", call_sid=CALL, conn_seq=1, generation=1), "es-ES")
    relay = relay_of(fail(twilio, "VX1", "64105"))
    assert relay.get("language") == "es-ES"
    assert relay.get("voice") == SPANISH.voice
    goodbye = parse(twilio.post("/action", action_form("ended", SessionId="VX2")))
    say = goodbye.find("Say")
    assert SPANISH.lines is not None
    assert say is not None and say.text == SPANISH.lines.goodbye
    assert say.get("language") == "es-ES" and say.get("voice") == f"Google.{SPANISH.voice}"


def test_say_lines_in_the_agents_language_and_voice(store: DynamoSessionStore) -> None:
    twilio = make_twilio(store)
    parse(twilio.post("/voice", VOICE_FORM))
    transfer = parse(twilio.post("/action", action_form("ended", HandoffData='{"reasonCode":"x"}')))
    say = transfer.find("Say")
    assert say is not None and say.text == AGENT.lines.transfer_announcement
    assert say.get("language") == "en-US" and say.get("voice") == f"Google.{ENGLISH.voice}"
    failed = parse(twilio.post("/dial-status", {"CallSid": CALL, "DialCallStatus": "no-answer"}))
    say = failed.find("Say")
    assert say is not None and say.get("language") == "en-US"
    amazon = dataclasses.replace(ENGLISH, tts_provider="Amazon", voice="Joanna-Neural")
    agent: AgentConfig = dataclasses.replace(AGENT, tts_provider="Amazon", voice="Joanna-Neural", languages=(amazon,))
    voicemail = parse(make_twilio(store, agent).post("/voice", {**VOICE_FORM, "AnsweredBy": "machine_start"}))
    say = voicemail.find("Say")
    assert say is not None and say.get("voice") == "Polly.Joanna-Neural"


def test_eleven_labs_voices_have_no_say_voice(store: DynamoSessionStore) -> None:
    from voice_agent.core.speech_plan import say_voice

    eleven = dataclasses.replace(ENGLISH, tts_provider="ElevenLabs", voice="UgBBYS2sOqTuMpoF3BR0")
    agent = dataclasses.replace(AGENT, languages=(eleven,), tts_provider="ElevenLabs", voice=eleven.voice)
    voice = say_voice(agent, "en-US")
    assert voice.voice is None and voice.language == "en-US"
    assert SpeechPlan().record is False
