"""Which speech settings a relay session starts with: the call's language, each language's providers
(the backups once a provider failed), the ``<Failover>`` Twilio may switch to by itself, and the
optional attributes. ``webhook/twiml.py`` writes it as TwiML; the relay uses the same settings to
declare a language mid-call. Framework-free: values in, values out.

A *known-good* plan is what ``/action`` resumes with after Twilio refused a configuration (64101,
64106): the call's language only, no ``<Failover>``, none of the optional attributes, no hints, no
extras; only what every call needs. If that fails too, the call goes to a person (``call_flow``).
"""

from __future__ import annotations

from dataclasses import dataclass

from voice_agent.agent.config import AgentConfig, LanguageOption, Lines


@dataclass(frozen=True, slots=True)
class SpeechPlan:
    language: str | None = None  # the call's language (None: the agent's)
    backup_tts: bool = False  # the TTS provider failed this call: speak with the backups
    backup_stt: bool = False  # the speech recognition provider failed: transcribe with the backups
    known_good: bool = False  # Twilio refused a configuration: only what every call needs
    record: bool = False  # start a recording (the call's first <Connect> only)


@dataclass(frozen=True, slots=True)
class FailoverSpec:
    """What Twilio switches one language to when a provider fails (``<Failover>``)."""

    tts_provider: str | None = None
    voice: str | None = None
    transcription_provider: str | None = None
    speech_model: str | None = None


@dataclass(frozen=True, slots=True)
class LanguageSpec:
    code: str
    tts_provider: str
    voice: str
    transcription_provider: str
    speech_model: str
    hints: tuple[str, ...] = ()
    failover: FailoverSpec | None = None


@dataclass(frozen=True, slots=True)
class RelaySpec:
    """One ``<ConversationRelay>``: its language, the ``<Language>`` list, and the optional attributes."""

    primary: LanguageSpec
    languages: tuple[LanguageSpec, ...]
    attributes: dict[str, str]
    failover_placement: str  # language | relay | off


def relay_spec(agent: AgentConfig, plan: SpeechPlan) -> RelaySpec:
    call = agent.speech_for(plan.language)
    primary = language_spec(call, plan)
    if plan.known_good:
        return RelaySpec(primary=primary, languages=(primary,), attributes={}, failover_placement="off")
    declared = [o for o in agent.languages if o.in_twiml or o.code == call.code]
    languages = tuple(primary if o.code == call.code else language_spec(o, plan) for o in declared)
    attributes = {**agent.relay.attributes(), **dict(agent.extra_relay_attributes)}
    return RelaySpec(
        primary=primary, languages=languages, attributes=attributes, failover_placement=agent.failover_twiml
    )


def language_spec(option: LanguageOption, plan: SpeechPlan) -> LanguageSpec:
    """``option`` as the plan speaks it: a failed provider replaced by the language's backup, and a
    ``<Failover>`` for each kind still on its primary provider (none in a known-good plan)."""
    tts, stt = option.backups.tts, option.backups.stt
    on_backup_tts = plan.backup_tts and tts is not None
    on_backup_stt = plan.backup_stt and stt is not None
    failover = None
    if not plan.known_good:
        failover = FailoverSpec(
            tts_provider=tts.provider if tts is not None and not on_backup_tts else None,
            voice=tts.voice if tts is not None and not on_backup_tts else None,
            transcription_provider=stt.provider if stt is not None and not on_backup_stt else None,
            speech_model=stt.speech_model if stt is not None and not on_backup_stt else None,
        )
        if failover == FailoverSpec():
            failover = None
    return LanguageSpec(
        code=option.code,
        tts_provider=tts.provider if on_backup_tts and tts is not None else option.tts_provider,
        voice=tts.voice if on_backup_tts and tts is not None else option.voice,
        transcription_provider=stt.provider if on_backup_stt and stt is not None else option.transcription_provider,
        speech_model=stt.speech_model if on_backup_stt and stt is not None else option.speech_model,
        hints=() if plan.known_good else option.hints,
        failover=failover,
    )


@dataclass(frozen=True, slots=True)
class SayVoice:
    """How ``<Say>`` speaks a line outside the relay: the words, and the language and voice."""

    lines: Lines
    language: str
    voice: str | None


def say_voice(agent: AgentConfig, call_language: str | None) -> SayVoice:
    """The call's language and a ``<Say>`` voice matching the agent's, when the language has lines
    of its own; otherwise the agent's lines in the agent's language. ``<Say>`` speaks Google voices
    as ``Google.<voice>`` and Amazon Polly voices as ``Polly.<voice>``; it has no ElevenLabs voices,
    so those lines take the language's default voice."""
    option = agent.language_option(call_language) if call_language else None
    if option is None or option.lines is None:
        option = agent.speech_for(agent.language)
        lines = agent.lines
    else:
        lines = option.lines
    prefix = {"Google": "Google.", "Amazon": "Polly."}.get(option.tts_provider)
    return SayVoice(lines=lines, language=option.code, voice=None if prefix is None else prefix + option.voice)
