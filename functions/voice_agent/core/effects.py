"""What a tool's effects send (``core/tools.py``): each becomes one outbound message, claimed like a
phrase (a turn that has been superseded sends none). Ending the session is the turn engine's
(``core/ending.py``) and wins over everything else in the same round.

| effect             | message                                                                   |
|--------------------|---------------------------------------------------------------------------|
| ``SwitchLanguage`` | ``language`` (both directions); a language the TwiML did not declare also  |
|                    | carries its settings, so Twilio need not guess a voice                     |
| ``SendDigitsEffect``| ``sendDigits``                                                           |
| ``SetHints``       | ``hints``                                                                  |
| ``UpdateSession``  | ``config`` with session settings                                           |
| ``SayUninterrupted``| ``text`` with ``interruptible: false``                                    |
"""

from __future__ import annotations

from voice_agent.agent.config import AgentConfig
from voice_agent.core.speech_plan import SpeechPlan, language_spec
from voice_agent.core.tools import (
    Effect,
    SayUninterrupted,
    SendDigitsEffect,
    SetHints,
    SwitchLanguage,
    UpdateSession,
)
from voice_agent.errors import OutboundValidationError
from voice_agent.log import logger
from voice_agent.protocol.live_config import Config, Hints, LanguageSettings
from voice_agent.protocol.outbound import Language, OutboundMessage, SendDigits, Text


def message_for(effect: Effect, agent: AgentConfig) -> OutboundMessage | None:
    """The message an effect sends; ``None`` if it sends none or would be refused (logged)."""
    try:
        return _message(effect, agent)
    except OutboundValidationError:
        logger.warning("tool effect produced an invalid message; not sent", extra={"effect": type(effect).__name__})
        return None


def _message(effect: Effect, agent: AgentConfig) -> OutboundMessage | None:
    match effect:
        case SwitchLanguage():
            return switch_to(effect.code, agent)
        case SendDigitsEffect():
            return SendDigits(effect.digits)
        case SetHints():
            return Hints(effect.hints, language=effect.language)
        case UpdateSession():
            return Config(session=effect.settings)
        case SayUninterrupted():
            return Text(effect.line + " ", interruptible=False)
    return None


def switch_to(code: str, agent: AgentConfig) -> Language:
    """``language`` for both directions; for a language the TwiML did not declare (``in_twiml=False``),
    with its settings (the extended message of 2026-10-28)."""
    option = agent.language_option(code)
    if option is None or option.in_twiml:
        return Language(tts_language=code, transcription_language=code)
    spec = language_spec(option, SpeechPlan())
    settings = LanguageSettings(
        code=spec.code,
        tts_provider=spec.tts_provider,
        voice=spec.voice,
        transcription_provider=spec.transcription_provider,
        speech_model=spec.speech_model,
        hints=spec.hints or None,
    )
    return Language(tts_language=code, transcription_language=code, declare=(settings,))
