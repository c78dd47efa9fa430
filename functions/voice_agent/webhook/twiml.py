"""TwiML documents, built with twilio's TwiML builder from the agent configuration."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from voice_agent.agent.config import AgentConfig


def connect(
    agent: AgentConfig,
    *,
    relay_url: str,
    action_url: str,
    greeting: str,
    parameters: Mapping[str, str],
) -> str:
    """``<Connect action><ConversationRelay>``: the call talks to the agent.

    Everything the socket needs travels as ``<Parameter>`` (it arrives in ``setup``); the
    WebSocket URL carries no query string, so its signature is over the bare ``wss://`` URL.
    """
    response = VoiceResponse()
    if agent.record_call:
        response.start().recording(recording_status_callback_event="completed")  # before <Connect>
    relay_connect = Connect(action=action_url, method="POST")
    relay = relay_connect.conversation_relay(
        url=relay_url,
        welcome_greeting=greeting,
        welcome_greeting_interruptible=agent.welcome_greeting_interruptible,
        language=agent.language,
        tts_provider=agent.tts_provider,
        voice=agent.voice,
        transcription_provider=agent.transcription_provider,
        speech_model=agent.speech_model,
        interruptible=agent.interruptible,
        dtmf_detection=agent.dtmf_detection,
        partial_prompts=agent.partial_prompts or None,
        application_reconnect=agent.application_reconnect or None,
        **dict(agent.extra_relay_attributes),
    )
    for option in agent.languages:
        relay.language(
            code=option.code,
            tts_provider=option.tts_provider,
            voice=option.voice,
            transcription_provider=option.transcription_provider,
            speech_model=option.speech_model,
        )
    for name, value in parameters.items():
        relay.parameter(name=name, value=value)
    response.append(relay_connect)
    return str(response.to_xml())


def transfer(agent: AgentConfig, *, dial_action_url: str) -> str:
    """A spoken line, then ``<Dial>`` the person; ``dial_action_url`` says what if no one answers."""
    response = VoiceResponse()
    response.say(agent.lines.transfer_announcement)
    dial = Dial(action=dial_action_url, method="POST", timeout=agent.dial_timeout_s)
    target = agent.transfer_target
    if target.startswith(("sip:", "sips:")):
        dial.sip(target)
    else:
        dial.number(target)
    response.append(dial)
    return str(response.to_xml())


def goodbye(agent: AgentConfig, *, say: bool) -> str:
    response = VoiceResponse()
    if say:
        response.say(agent.lines.goodbye)
    response.hangup()
    return str(response.to_xml())


def transfer_failed(agent: AgentConfig) -> str:
    response = VoiceResponse()
    response.say(agent.lines.transfer_failed)
    response.hangup()
    return str(response.to_xml())


def hang_up() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response.to_xml())


def empty() -> str:
    return str(VoiceResponse().to_xml())
