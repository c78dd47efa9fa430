"""TwiML documents, built with twilio's TwiML builder from the agent configuration."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml import TwiML
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from voice_agent.agent.config import AgentConfig
from voice_agent.core.speech_plan import FailoverSpec, SayVoice, SpeechPlan, relay_spec, say_voice


def connect(
    agent: AgentConfig,
    *,
    relay_url: str,
    action_url: str,
    greeting: str,
    parameters: Mapping[str, str],
    plan: SpeechPlan | None = None,
) -> str:
    """``<Connect action><ConversationRelay>``: the call talks to the agent, speaking as ``plan`` says
    (``core/speech_plan.py``: the call's language, backups after a provider failed, a known-good
    configuration after Twilio refused one). Only the call's first ``<Connect>`` starts a recording.

    Everything the socket needs travels as ``<Parameter>`` (it arrives in ``setup``); the socket URL
    carries the call's id and token (``call_tokens.py``) so ``$connect`` can bind it before any setup.
    """
    plan = plan or SpeechPlan()
    spec = relay_spec(agent, plan)
    response = VoiceResponse()
    if plan.record:
        response.start().recording(recording_status_callback_event="completed")  # before <Connect>
    relay_connect = Connect(action=action_url, method="POST")
    primary = spec.primary
    relay = relay_connect.conversation_relay(
        url=relay_url,
        welcome_greeting=greeting,
        welcome_greeting_interruptible=agent.welcome_greeting_interruptible,
        language=primary.code,
        tts_provider=primary.tts_provider,
        voice=primary.voice,
        transcription_provider=primary.transcription_provider,
        speech_model=primary.speech_model,
        interruptible=agent.interruptible,
        dtmf_detection=agent.dtmf_detection,
        partial_prompts=agent.partial_prompts or None,
        application_reconnect=agent.application_reconnect or None,
        **spec.attributes,
    )
    for language in spec.languages:
        element = relay.language(
            code=language.code,
            tts_provider=language.tts_provider,
            voice=language.voice,
            transcription_provider=language.transcription_provider,
            speech_model=language.speech_model,
            hints=",".join(language.hints) or None,
        )
        if spec.failover_placement == "language":
            _failover(element, language.failover)
    if spec.failover_placement == "relay":
        for language in spec.languages:
            _failover(relay, language.failover, language=language.code)
    for name, value in parameters.items():
        relay.parameter(name=name, value=value)
    response.append(relay_connect)
    return str(response.to_xml())


def _failover(parent: TwiML, failover: FailoverSpec | None, **where: str) -> None:
    """``<Failover>``: the providers Twilio switches a language to when one fails (2026-11-18).
    twilio-python has no builder for it yet; its attribute names follow ``<Language>``'s (unverified)."""
    if failover is None:
        return
    parent.add_child(
        "Failover",
        **where,
        ttsProvider=failover.tts_provider,
        voice=failover.voice,
        transcriptionProvider=failover.transcription_provider,
        speechModel=failover.speech_model,
    )


def transfer(agent: AgentConfig, *, dial_action_url: str, language: str | None = None) -> str:
    """A spoken line, then ``<Dial>`` the person; ``dial_action_url`` says what if no one answers."""
    response = VoiceResponse()
    _say(response, say_voice(agent, language), "transfer_announcement")
    dial = Dial(action=dial_action_url, method="POST", timeout=agent.dial_timeout_s)
    target = agent.transfer_target
    if target.startswith(("sip:", "sips:")):
        dial.sip(target)
    else:
        dial.number(target)
    response.append(dial)
    return str(response.to_xml())


def goodbye(agent: AgentConfig, *, say: bool, language: str | None = None) -> str:
    response = VoiceResponse()
    if say:
        _say(response, say_voice(agent, language), "goodbye")
    response.hangup()
    return str(response.to_xml())


def transfer_failed(agent: AgentConfig, *, language: str | None = None) -> str:
    response = VoiceResponse()
    _say(response, say_voice(agent, language), "transfer_failed")
    response.hangup()
    return str(response.to_xml())


def voicemail(agent: AgentConfig) -> str:
    response = VoiceResponse()
    _say(response, say_voice(agent, agent.language), "voicemail")
    response.hangup()
    return str(response.to_xml())


def _say(response: VoiceResponse, voice: SayVoice, line: str) -> None:
    """A line spoken outside the relay, in the call's language and (where ``<Say>`` has it) the
    agent's voice."""
    response.say(getattr(voice.lines, line), voice=voice.voice, language=voice.language)


def hang_up() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response.to_xml())


def empty() -> str:
    return str(VoiceResponse().to_xml())
