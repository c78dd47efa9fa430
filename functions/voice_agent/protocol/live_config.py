"""The mid-call configuration messages (GA 2026-10-28): ``config`` (session settings and
per-language settings), ``hints``, and the settings a ``language`` message carries to declare a
language the TwiML did not. Typed and validated like every outbound message (``outbound.py``).

Sources: the changelog of 2026-10-28 names the ``config``, ``hints`` and ``language`` messages;
<https://www.twilio.com/docs/voice/conversationrelay/dynamic-configuration> lists what each may
change (a language's speech model, hints, transcription provider, voice, TTS provider; the session's
``interruptible``, ``preemptible``, ``dtmfDetection``, ``reportInputDuringAgentSpeech``,
``partialPrompts``, ``speechTimeout``, ``echoPromptFiltering``, ``interruptSensitivity``,
``ignoreBackchannel``, ``profanityFilter``, ``eotThreshold``).

**Unverified:** no source readable here shows the messages' JSON. The wire shape is this project's
reading: every field is named as the ``<ConversationRelay>`` / ``<Language>`` attribute it changes
(session settings at the top level, languages as a ``languages`` list of ``<Language>``-shaped
objects, hints comma-separated as in TwiML). Each shape lives in one ``to_wire`` below, so a
correction is one edit; ``docs/protocol.md`` lists them with what is verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Final, Literal

from voice_agent.errors import OutboundValidationError
from voice_agent.protocol.checks import (
    INTERRUPTIBLE,
    STT_PROVIDERS,
    TTS_PROVIDERS,
    check_choice,
    check_float_range,
    check_hints,
    check_int_range,
    check_lang,
    check_name,
    check_optional_bool,
)

InterruptMode = Literal["any", "speech", "dtmf", "none"]
Sensitivity = Literal["low", "medium", "high"]
SENSITIVITIES: Final = ("low", "medium", "high")
MAX_SPEECH_TIMEOUT_MS: Final = 10_000


@dataclass(frozen=True, slots=True)
class LanguageSettings:
    """One language's speech settings, shaped like a ``<Language>`` element."""

    code: str
    tts_provider: str | None = None
    voice: str | None = None
    transcription_provider: str | None = None
    speech_model: str | None = None
    hints: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_lang(self.code, "language code")
        if self.code is None:
            raise OutboundValidationError("language settings need a code")
        check_choice(self.tts_provider, TTS_PROVIDERS, "ttsProvider")
        check_choice(self.transcription_provider, STT_PROVIDERS, "transcriptionProvider")
        check_name(self.voice, "voice")
        check_name(self.speech_model, "speechModel")
        if self.hints is not None:
            check_hints(self.hints, "hints")
        if all(getattr(self, f.name) is None for f in fields(self) if f.name != "code"):
            raise OutboundValidationError(f"language settings for {self.code} change nothing")

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"code": self.code}
        for name, key in _LANGUAGE_KEYS:
            value = getattr(self, name)
            if value is not None:
                wire[key] = ",".join(value) if name == "hints" else value
        return wire


_LANGUAGE_KEYS: Final = (
    ("tts_provider", "ttsProvider"),
    ("voice", "voice"),
    ("transcription_provider", "transcriptionProvider"),
    ("speech_model", "speechModel"),
    ("hints", "hints"),
)


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Session settings a call may change mid-call (each ``None``: unchanged)."""

    interruptible: InterruptMode | None = None
    preemptible: bool | None = None
    dtmf_detection: bool | None = None
    report_input_during_agent_speech: InterruptMode | None = None
    partial_prompts: bool | None = None
    speech_timeout_ms: int | None = None
    echo_prompt_filtering: bool | None = None
    interrupt_sensitivity: Sensitivity | None = None
    ignore_backchannel: bool | None = None
    profanity_filter: bool | None = None
    eot_threshold: float | None = None

    def __post_init__(self) -> None:
        check_choice(self.interruptible, INTERRUPTIBLE, "interruptible")
        check_choice(self.report_input_during_agent_speech, INTERRUPTIBLE, "reportInputDuringAgentSpeech")
        check_choice(self.interrupt_sensitivity, SENSITIVITIES, "interruptSensitivity")
        for name in ("preemptible", "dtmf_detection", "partial_prompts", "echo_prompt_filtering"):
            check_optional_bool(getattr(self, name), name)
        check_optional_bool(self.ignore_backchannel, "ignoreBackchannel")
        check_optional_bool(self.profanity_filter, "profanityFilter")
        check_int_range(self.speech_timeout_ms, 0, MAX_SPEECH_TIMEOUT_MS, "speechTimeout")
        check_float_range(self.eot_threshold, 0.0, 1.0, "eotThreshold")

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def to_wire(self) -> dict[str, object]:
        return {key: getattr(self, name) for name, key in _SESSION_KEYS if getattr(self, name) is not None}


_SESSION_KEYS: Final = (
    ("interruptible", "interruptible"),
    ("preemptible", "preemptible"),
    ("dtmf_detection", "dtmfDetection"),
    ("report_input_during_agent_speech", "reportInputDuringAgentSpeech"),
    ("partial_prompts", "partialPrompts"),
    ("speech_timeout_ms", "speechTimeout"),
    ("echo_prompt_filtering", "echoPromptFiltering"),
    ("interrupt_sensitivity", "interruptSensitivity"),
    ("ignore_backchannel", "ignoreBackchannel"),
    ("profanity_filter", "profanityFilter"),
    ("eot_threshold", "eotThreshold"),
)
SESSION_WIRE_KEYS: Final = frozenset(key for _, key in _SESSION_KEYS)
LANGUAGE_WIRE_KEYS: Final = frozenset({"code", *(key for _, key in _LANGUAGE_KEYS)})


@dataclass(frozen=True, slots=True)
class Config:
    """Change session settings and/or languages' settings for the rest of the call."""

    session: SessionSettings = field(default_factory=SessionSettings)
    languages: tuple[LanguageSettings, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.session, SessionSettings) or not all(
            isinstance(x, LanguageSettings) for x in self.languages
        ):
            raise OutboundValidationError("config takes SessionSettings and LanguageSettings")
        if self.session.empty and not self.languages:
            raise OutboundValidationError("config changes nothing")
        codes = [x.code.lower() for x in self.languages]
        if len(set(codes)) != len(codes):
            raise OutboundValidationError("config names a language twice")

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"type": "config", **self.session.to_wire()}
        if self.languages:
            wire["languages"] = [x.to_wire() for x in self.languages]
        return wire


@dataclass(frozen=True, slots=True)
class Hints:
    """Words or phrases that help speech recognition from now on (``language``: that language's;
    ``None``: the active one). An empty tuple clears them."""

    hints: tuple[str, ...]
    language: str | None = None

    def __post_init__(self) -> None:
        check_hints(self.hints, "hints")
        check_lang(self.language, "hints.language")

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"type": "hints", "hints": ",".join(self.hints)}
        if self.language is not None:
            wire["language"] = self.language
        return wire
