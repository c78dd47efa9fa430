"""The typed shape of what a fork may set on ``<ConversationRelay>`` beyond voice and language: the
documented attributes as fields (``RelayOptions``) and each language's backup speech providers
(``Backups``). The values live in ``agent/config.py``; this module is the schema and its checks.

The attribute names are twilio-python 9.13's ``<ConversationRelay>`` builder
(``twilio/twiml/voice_response.py``, generated from Twilio's TwiML definitions) plus ``eotThreshold``
from the dynamic-configuration guide; ``docs/protocol.md`` lists each with its source and what is
verified only locally.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

TtsProvider = Literal["Google", "Amazon", "ElevenLabs"]
SttProvider = Literal["Google", "Deepgram"]
Sensitivity = Literal["low", "medium", "high"]
InputMode = Literal["any", "speech", "dtmf", "none"]
TextNormalization = Literal["auto", "on", "off"]
# ``debug`` options (Twilio's <ConversationRelay> page): speaker-events sends ``info`` messages
# agentSpeaking / clientSpeaking on and off, which the agent uses to send ``end`` once a closing line
# has been spoken; tokens-played reports the spoken text (logged as a length only).
DebugOption = Literal["debugging", "speaker-events", "tokens-played"]
# ``events`` subscriptions (2026): config-updated sends a ``configUpdated`` info message when Twilio
# switches providers (``<Failover>``) or applies a ``config`` message.
EventName = Literal["config-updated"]
FailoverPlacement = Literal["language", "relay", "off"]

MAX_HINTS: Final = 100
MAX_HINT_CHARS: Final = 100

# Every <ConversationRelay> attribute twilio-python 9.13 knows, plus eotThreshold (dynamic
# configuration guide, 2026-10-30): the names ``extra_relay_attributes`` may use.
DOCUMENTED_ATTRIBUTES: Final = frozenset(
    {
        "url",
        "language",
        "ttsLanguage",
        "transcriptionLanguage",
        "ttsProvider",
        "voice",
        "transcriptionProvider",
        "speechModel",
        "profanityFilter",
        "dtmfDetection",
        "welcomeGreeting",
        "partialPrompts",
        "welcomeGreetingInterruptible",
        "interruptible",
        "preemptible",
        "hints",
        "intelligenceService",
        "reportInputDuringAgentSpeech",
        "elevenlabsTextNormalization",
        "interruptSensitivity",
        "debug",
        "backgroundNoiseReduction",
        "speechTimeout",
        "deepgramSmartFormat",
        "ignoreBackchannel",
        "events",
        "partialPromptOnHangup",
        "eagerEotThreshold",
        "asrSmartFormat",
        "ttsTextNormalization",
        "ttsLanguageTextNormalization",
        "elevenlabsLanguageTextNormalization",
        "includeInPrompt",
        "customerName",
        "applicationReconnect",
        "echoPromptFiltering",
        "turnDetection",
        "eotThreshold",
    }
)
# Attributes ``AgentConfig`` sets from its own typed fields (never from extras).
AGENT_ATTRIBUTES: Final = frozenset(
    {
        "url",
        "language",
        "ttsProvider",
        "voice",
        "transcriptionProvider",
        "speechModel",
        "dtmfDetection",
        "welcomeGreeting",
        "partialPrompts",
        "welcomeGreetingInterruptible",
        "interruptible",
        "applicationReconnect",
    }
)


@dataclass(frozen=True, slots=True)
class TtsBackup:
    """The voice Twilio (``<Failover>``) or ``/action`` switches to when the TTS provider fails."""

    provider: TtsProvider
    voice: str


@dataclass(frozen=True, slots=True)
class SttBackup:
    """The transcription a session switches to when the speech recognition provider fails."""

    provider: SttProvider
    speech_model: str


@dataclass(frozen=True, slots=True)
class Backups:
    """One language's backup providers. ``None``: Twilio's default backup for that language (if it
    has one), and ``/action`` resumes on the same provider."""

    tts: TtsBackup | None = None
    stt: SttBackup | None = None


@dataclass(frozen=True, slots=True)
class RelayOptions:
    """Documented ``<ConversationRelay>`` attributes, typed (``None`` or empty: not set, Twilio's
    default). Validated at cold start with the rest of the agent configuration."""

    interrupt_sensitivity: Sensitivity | None = None
    ignore_backchannel: bool | None = None
    echo_prompt_filtering: bool | None = None
    turn_detection: bool | None = None
    eager_eot_threshold: float | None = None  # 0.3 to 0.9
    speech_timeout_ms: int | None = None  # silence that ends the caller's turn
    preemptible: bool | None = None
    hints: tuple[str, ...] = ()  # the call language's words to recognise better (names, products)
    profanity_filter: bool | None = None
    report_input_during_agent_speech: InputMode | None = None
    background_noise_reduction: bool | None = None
    tts_text_normalization: TextNormalization | None = None
    partial_prompt_on_hangup: bool | None = None
    debug: tuple[DebugOption, ...] = ("speaker-events",)
    events: tuple[EventName, ...] = ("config-updated",)

    def attributes(self) -> dict[str, str]:
        """The attributes these options set, as TwiML writes them."""
        out: dict[str, str] = {}
        for name, key in _ATTRIBUTE_KEYS:
            value = getattr(self, name)
            if value is None or value == ():
                continue
            out[key] = _render(name, value)
        return out


_ATTRIBUTE_KEYS: Final = (
    ("interrupt_sensitivity", "interruptSensitivity"),
    ("ignore_backchannel", "ignoreBackchannel"),
    ("echo_prompt_filtering", "echoPromptFiltering"),
    ("turn_detection", "turnDetection"),
    ("eager_eot_threshold", "eagerEotThreshold"),
    ("speech_timeout_ms", "speechTimeout"),
    ("preemptible", "preemptible"),
    ("hints", "hints"),
    ("profanity_filter", "profanityFilter"),
    ("report_input_during_agent_speech", "reportInputDuringAgentSpeech"),
    ("background_noise_reduction", "backgroundNoiseReduction"),
    ("tts_text_normalization", "ttsTextNormalization"),
    ("partial_prompt_on_hangup", "partialPromptOnHangup"),
    ("debug", "debug"),
    ("events", "events"),
)
TYPED_ATTRIBUTES: Final = frozenset(key for _, key in _ATTRIBUTE_KEYS)


def _render(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        # hints are comma-separated (Twilio's changelog of 2025-04); debug options and event names
        # space-separated, as Twilio's examples write debug (unverified for events).
        return ("," if name == "hints" else " ").join(value)
    return str(value)


def option_problems(o: RelayOptions) -> list[str]:
    p: list[str] = []
    if o.interrupt_sensitivity not in (None, "low", "medium", "high"):
        p.append("relay.interrupt_sensitivity must be low, medium or high")
    if o.eager_eot_threshold is not None and not 0.3 <= o.eager_eot_threshold <= 0.9:
        p.append("relay.eager_eot_threshold must be 0.3..0.9")
    if o.speech_timeout_ms is not None and not 100 <= o.speech_timeout_ms <= 10_000:
        p.append("relay.speech_timeout_ms must be 100..10000")
    if o.report_input_during_agent_speech not in (None, "any", "speech", "dtmf", "none"):
        p.append("relay.report_input_during_agent_speech must be any, speech, dtmf or none")
    if o.tts_text_normalization not in (None, "auto", "on", "off"):
        p.append("relay.tts_text_normalization must be auto, on or off")
    if any(d not in ("debugging", "speaker-events", "tokens-played") for d in o.debug):
        p.append("relay.debug options are debugging, speaker-events, tokens-played")
    if any(e != "config-updated" for e in o.events):
        p.append("relay.events: config-updated is the event this version knows")
    return p + hint_problems(o.hints, "relay.hints")


def hint_problems(hints: tuple[str, ...], where: str) -> list[str]:
    if len(hints) > MAX_HINTS:
        return [f"{where}: at most {MAX_HINTS} hints"]
    bad = [h for h in hints if not h.strip() or "," in h or len(h) > MAX_HINT_CHARS]
    return [f"{where}: each hint is 1 to {MAX_HINT_CHARS} characters without a comma"] if bad else []


def extra_attribute_problems(extras: Mapping[str, str]) -> list[str]:
    """``extra_relay_attributes`` is an escape hatch for documented attributes without a typed field."""
    p: list[str] = []
    for key, value in extras.items():
        if key not in DOCUMENTED_ATTRIBUTES:
            p.append(f"extra_relay_attributes: {key!r} is not a documented <ConversationRelay> attribute")
        elif key in AGENT_ATTRIBUTES or key in TYPED_ATTRIBUTES:
            p.append(f"extra_relay_attributes: {key!r} has a typed field; set that instead")
        if not isinstance(value, str) or not value:
            p.append(f"extra_relay_attributes: {key!r} needs a non-empty string value")
    return p


def backup_problems(code: str, backups: Backups) -> list[str]:
    p: list[str] = []
    if backups.tts is not None and (
        backups.tts.provider not in ("Google", "Amazon", "ElevenLabs") or not backups.tts.voice.strip()
    ):
        p.append(f"languages: {code} TTS backup needs a provider (Google, Amazon, ElevenLabs) and a voice")
    if backups.stt is not None and (
        backups.stt.provider not in ("Google", "Deepgram") or not backups.stt.speech_model.strip()
    ):
        p.append(f"languages: {code} STT backup needs a provider (Google, Deepgram) and a speech model")
    return p
