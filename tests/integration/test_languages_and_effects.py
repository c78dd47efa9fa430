"""Languages through a turn (prompt.lang stored and told to the model, text.lang in a "multi"
session, a language the TwiML did not declare switched to with its settings, the language after a
reconnect) and the mid-call configuration effects tools may ask for."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from tests.integration.test_turn_engine import CONN, SETUP, budget, engine_for, tool_reply
from tests.support.fakes import RecordingSender, ScriptedModel
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.agent.config import AGENT, AgentConfig, LanguageOption
from voice_agent.core.relay import Relay
from voice_agent.core.tools import SayUninterrupted, SetHints, ToolResult, UpdateSession, tool
from voice_agent.core.turn_engine import TurnEngine
from voice_agent.protocol.inbound import Setup
from voice_agent.protocol.live_config import Config, Hints, LanguageSettings, SessionSettings
from voice_agent.protocol.outbound import Language, Text
from voice_agent.wiring import tool_registry

FRENCH = LanguageOption("fr-FR", "Google", "fr-FR-Chirp3-HD-Aoede", "Deepgram", "nova-3-general", in_twiml=False)


@pytest.fixture
def bound(store: DynamoSessionStore) -> DynamoSessionStore:
    store.bind_connection(CONN, SETUP)
    return store


def test_prompt_lang_is_stored_with_the_turn_and_reaches_the_model(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    relay = Relay(
        store=bound, engine=engine_for(bound, sender, model), sender=sender, agent=AGENT, warm_model=model.warm
    )
    model.say("Claro.")
    relay.handle(CONN, json.dumps({"type": "prompt", "voicePrompt": "¿Abren el domingo?", "lang": "es-ES"}), budget())
    user = [r for r in bound.load_history(SETUP.call_sid, 50) if r.role == "user"]
    assert [(r.text, r.lang) for r in user] == [("¿Abren el domingo?", "es-ES")]
    system = model.requests[-1].messages[0].content
    assert system.endswith(AGENT.lines.language_note.format(lang="es-ES"))


def test_a_multi_session_tags_every_text_with_lang(
    store: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    multi = LanguageOption("multi", "ElevenLabs", "UgBBYS2sOqTuMpoF3BR0", "Deepgram", "nova-3-general")
    agent = dataclasses.replace(
        AGENT, language="multi", tts_provider="ElevenLabs", voice=multi.voice, languages=(multi,)
    ).validate()
    store.bind_connection(CONN, SETUP)
    model.say("Hola. Hello. Bonjour.")
    engine_for(store, sender, model, agent).run_prompt(CONN, "Hi", budget(), lang="en")
    texts = sender.texts(CONN)
    assert texts and all(t.lang == "multi" for t in texts)
    # an English session sends no lang
    sender.messages.clear()
    model.say("Hello.")
    engine_for(store, sender, model).run_prompt(CONN, "Hi", budget())
    assert all(t.lang is None for t in sender.texts(CONN))


def test_switching_to_a_language_the_twiml_did_not_declare_sends_its_settings(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    agent = dataclasses.replace(AGENT, languages=(*AGENT.languages, FRENCH)).validate()
    model.replies.append(tool_reply("switch_language", {"language": "fr-FR"}))
    model.say("Bien sûr.")
    engine_for(bound, sender, model, agent).run_prompt(CONN, "En français ?", budget())
    switch = next(m for m in sender.for_connection(CONN) if isinstance(m, Language))
    assert switch.declare == (
        LanguageSettings("fr-FR", "Google", "fr-FR-Chirp3-HD-Aoede", "Deepgram", "nova-3-general"),
    )
    # a declared one is switched to by its code alone
    sender.messages.clear()
    model.replies.append(tool_reply("switch_language", {"language": "es-ES"}))
    model.say("Claro.")
    engine_for(bound, sender, model, agent).run_prompt(CONN, "¿Español?", budget())
    assert Language("es-ES", "es-ES") in sender.for_connection(CONN)


def test_the_language_survives_an_application_reconnect(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    model.replies.append(tool_reply("switch_language", {"language": "es-ES"}))
    model.say("Claro.")
    engine_for(bound, sender, model).run_prompt(CONN, "¿Español?", budget())
    bound.prebind_connection("c2", SETUP.call_sid, 0)
    session = bound.bind_connection("c2", Setup(session_id=SETUP.session_id, call_sid=SETUP.call_sid))
    assert session.app_reconnect and session.language == "es-ES"
    bound.open_connection("c2")  # (the relay opens it once the handover is stored)
    ticket = bound.start_turn("c2", "hola")
    assert ticket is not None and ticket.language == "es-ES"


@tool
def spell_surname(surname: str) -> ToolResult:
    """Get ready for the caller to spell their surname."""
    return ToolResult(
        content="Ready.",
        effects=(
            SetHints(hints=(surname, "double", "dash")),
            UpdateSession(SessionSettings(speech_timeout_ms=2500, interruptible="none")),
            SayUninterrupted("Please spell it after the tone."),
        ),
    )


def test_tools_configure_the_session_mid_call_through_effects(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    registry = tool_registry()
    registry.tools["spell_surname"] = spell_surname
    agent = dataclasses.replace(AGENT, tools=(*AGENT.tools, "spell_surname"))
    engine = TurnEngine(store=bound, sender=sender, model=lambda: model, agent=agent, tools=registry)
    model.replies.append(tool_reply("spell_surname", {"surname": "Nguyen"}))
    model.say("Go ahead.")
    assert engine.run_prompt(CONN, "My name is hard to spell", budget()).status == "completed"
    sent = sender.for_connection(CONN)
    assert Hints(("Nguyen", "double", "dash")) in sent
    assert Config(SessionSettings(speech_timeout_ms=2500, interruptible="none")) in sent
    assert Text("Please spell it after the tone. ", interruptible=False) in sent
    order = [type(m).__name__ for m in sent]
    assert order.index("Hints") < order.index("Config") < len(order) - 1  # before the reply's end


def test_the_expect_words_tool_sends_hints(
    bound: DynamoSessionStore, sender: RecordingSender, model: ScriptedModel
) -> None:
    agent: AgentConfig = dataclasses.replace(AGENT, tools=(*AGENT.tools, "expect_words")).validate(
        known_tools=tool_registry().names
    )
    model.replies.append(tool_reply("expect_words", {"words": ["Siobhan", "a,b", " "]}))
    model.say("Please go ahead.")
    engine_for(bound, sender, model, agent).run_prompt(CONN, "I'll spell my name", budget())
    hints: list[Any] = [m for m in sender.for_connection(CONN) if isinstance(m, Hints)]
    assert hints == [Hints(("Siobhan",))]
