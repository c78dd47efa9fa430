"""The schema of an agent's configuration, and its defaults. A fork's values live in the agents
folder (``voice_agent/agents/<name>/agent.toml``, loaded onto these dataclasses by
``agent/loader.py``; ``docs/agents.md``); a key an agent leaves out keeps the default here.

Everything here is behaviour (what the agent says, how it sounds, what it may do). Deployment
details (table name, URLs) are in ``voice_agent.settings``; secrets are never here.

Providers, voices and models are set explicitly on purpose: Twilio's defaults differ between
accounts, and an unset ElevenLabs voice fails calls with error 64101.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from voice_agent.agent.around_call import ContextPolicy, HandoffPolicy, around_call_problems
from voice_agent.agent.preemption import Preemption
from voice_agent.agent.relay_options import (
    Backups,
    FailoverPlacement,
    RelayOptions,
    SttBackup,
    SttProvider,
    TtsBackup,
    TtsProvider,
    backup_problems,
    extra_attribute_problems,
    hint_problems,
    option_problems,
)
from voice_agent.core.phrases import PhrasePolicy
from voice_agent.errors import ConfigurationError
from voice_agent.model_choice import DEFAULT_MODELS, ModelRef, Provider, model_problems, resolve_chain

Interruptible = Literal["any", "speech", "dtmf", "none"]
__all__ = ["AGENT", "AgentConfig", "Backups", "LanguageOption", "Lines", "RelayOptions", "SttBackup", "TtsBackup"]

_HERE = Path(__file__).parent
_LANG = re.compile(r"^(multi|[a-z]{2,3}(-[A-Za-z0-9]{2,8})*)$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SIP = re.compile(r"^sips?:[^@\s]+@[^\s]+$")
_INTERRUPTIBLE = ("any", "speech", "dtmf", "none")
_TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class LanguageOption:
    """One language the call may speak: its speech and transcription settings, the providers to
    fail over to, and (optionally) the lines ``/action`` speaks with ``<Say>`` in it.

    ``in_twiml=False`` keeps it out of the TwiML's ``<Language>`` list: switching to it then sends its
    settings in the ``language`` message (mid-call configuration)."""

    code: str
    tts_provider: TtsProvider
    voice: str
    transcription_provider: SttProvider
    speech_model: str
    backups: Backups = field(default_factory=Backups)
    hints: tuple[str, ...] = ()
    lines: Lines | None = None  # None: the agent's lines, in the agent's language
    in_twiml: bool = True


@dataclass(frozen=True, slots=True)
class Lines:
    """What the agent says without asking the model."""

    welcome_greeting: str = "Hi, this is Ada from Example Hardware. How can I help you today?"
    reconnect_greeting: str = "Sorry about that, we were cut off. Where were we?"
    apology: str = "Sorry, I'm having trouble right now. Could you say that again?"
    cut_short: str = "Let me stop there. What else can I help you with?"
    filler: str = "One moment, let me check that."
    handoff: str = "Of course, let me connect you with a colleague."
    transfer_announcement: str = "Please hold while I connect you."
    transfer_failed: str = "Sorry, no one could take your call right now. Please call back later. Goodbye."
    goodbye: str = "Thanks for calling Example Hardware. Goodbye!"
    refusal: str = "Sorry, I can't help with that. Is there anything about the store I can help with?"
    # Outbound calls answered by a machine (answering-machine detection): leave this and hang up.
    voicemail: str = "Hi, this is Ada from Example Hardware. Sorry we missed you. Please call us back. Goodbye."
    # How a key press reaches the model (in the user role). {digit} is the key.
    dtmf_note: str = "(The caller pressed the {digit} key on their phone.)"
    # The line dropped while the agent was answering and came back by itself (application reconnect):
    # how the model is asked, in the user role, to answer the cut question on the new socket.
    resume_note: str = "(The line dropped before you finished answering. Answer the caller's last message again.)"
    # Told to the model (in the system prompt) when Twilio says which language it heard. {lang}: the tag.
    language_note: str = "The caller's last message was recognised as {lang}."


SPANISH_LINES = Lines(
    transfer_announcement="Un momento, le paso con un compañero.",
    transfer_failed="Lo siento, ahora no hay nadie disponible. Por favor, llame más tarde. Adiós.",
    goodbye="Gracias por llamar a Example Hardware. ¡Adiós!",
    voicemail="Hola, soy Ada de Example Hardware. Sentimos no haberle localizado. Por favor, llámenos. Adiós.",
)


# -- Silence, key entry, the call's length and the call record ---------------------------------
# What the agent does on a timer (no one spoke, keys stopped coming, the call ran too long) and
# what each call leaves behind. Kept apart from the rest: the runtime reads these only in the
# timer and record functions, the key-entry tool and the scheduling after each reply.


@dataclass(frozen=True, slots=True)
class TimedLines:
    """What the agent says on a timer, in one language."""

    # One per reminder, in order: after the last one, silence_goodbye and the call ends.
    reminders: tuple[str, ...] = ("Are you still there?", "I'm still here. Is there anything else I can help with?")
    silence_goodbye: str = "I haven't heard anything, so I'll end the call now. Thanks for calling. Goodbye!"
    time_limit: str = "We've reached the time limit for this call. Thanks for calling. Goodbye!"
    # The key-entry tool: its line when the model gave none, and the re-prompt after a pause.
    key_prompt: str = "Please key it in on your phone's keypad."
    key_reprompt: str = "Sorry, I didn't get that. Please key it in now on your keypad."


SPANISH_TIMED_LINES = TimedLines(
    reminders=("¿Sigue ahí?", "Sigo aquí. ¿Hay algo más en lo que pueda ayudarle?"),
    silence_goodbye="No le oigo, así que voy a terminar la llamada. Gracias por llamar. ¡Adiós!",
    time_limit="Hemos llegado al tiempo máximo de esta llamada. Gracias por llamar. ¡Adiós!",
    key_prompt="Por favor, márquelo en el teclado de su teléfono.",
    key_reprompt="Perdone, no lo he recibido. Por favor, márquelo ahora en el teclado.",
)


@dataclass(frozen=True)
class TimingPolicy:
    """Timers: the caller's silence, key entry, and the longest call (seconds, whole: the timer is
    an SQS delay)."""

    # Silence after the agent finished speaking (its words' estimated playback, then this) before a
    # reminder; 0 turns reminders off.
    silence_after_s: int = 8
    max_call_s: int = 1800  # the call ends with lines.time_limit; 0: no limit
    key_timeout_s: int = 6  # no key for this long: the re-prompt, then the entry ends with what came
    key_reprompts: int = 1
    max_keys: int = 32  # an entry "until #" ends here at the latest
    # Per language (the call's current one, else the agent's language, else the first entry).
    lines: Mapping[str, TimedLines] = field(
        default_factory=lambda: MappingProxyType({"en-US": TimedLines(), "es-ES": SPANISH_TIMED_LINES})
    )

    def lines_for(self, language: str | None, fallback: str) -> TimedLines:
        by_code = {code.lower(): lines for code, lines in self.lines.items()}
        for code in (language, fallback):
            if code and code.lower() in by_code:
                return by_code[code.lower()]
        return next(iter(self.lines.values()), TimedLines())


@dataclass(frozen=True)
class CallRecordPolicy:
    """After the call, off every turn's path: the model may summarise it and fill in fields."""

    summary: bool = False  # a short summary in the record and its event
    # A JSON schema (an object with "properties") the model fills in from the transcript, e.g.
    # {"type": "object", "properties": {"order_id": {"type": "string"}, "resolved": {"type": "boolean"}}}
    fields_schema: Mapping[str, Any] | None = None
    max_summary_chars: int = 600

    @property
    def uses_model(self) -> bool:
        return self.summary or self.fields_schema is not None


@dataclass(frozen=True)  # no slots: system_prompt is a cached_property
class AgentConfig:
    name: str = "Ada"
    system_prompt_file: Path = _HERE / "system_prompt.md"
    lines: Lines = field(default_factory=Lines)

    # Speech: <ConversationRelay> attributes.
    language: str = "en-US"
    tts_provider: TtsProvider = "Google"
    voice: str = "en-US-Chirp3-HD-Aoede"
    transcription_provider: SttProvider = "Deepgram"
    speech_model: str = "nova-3-general"
    # Languages the call may switch to (switch_language tool); the call's language must be one.
    # Each names the providers a failure switches to: <Failover> in the TwiML, and /action's recovery.
    languages: tuple[LanguageOption, ...] = (
        LanguageOption(
            "en-US",
            "Google",
            "en-US-Chirp3-HD-Aoede",
            "Deepgram",
            "nova-3-general",
            backups=Backups(tts=TtsBackup("Amazon", "Joanna-Neural"), stt=SttBackup("Google", "telephony")),
        ),
        LanguageOption(
            "es-ES",
            "Google",
            "es-ES-Chirp3-HD-Aoede",
            "Deepgram",
            "nova-3-general",
            backups=Backups(tts=TtsBackup("Amazon", "Lucia-Neural"), stt=SttBackup("Google", "telephony")),
            lines=SPANISH_LINES,
        ),
    )
    interruptible: Interruptible = "any"
    welcome_greeting_interruptible: Interruptible = "any"
    dtmf_detection: bool = True
    # Twilio reconnects a dropped socket by itself and replays what it buffered (GA 2026-10-28);
    # /action's recovery stays the fallback when that fails.
    application_reconnect: bool = True
    # Partial (cumulative, last=false) prompts: on. A speculative turn starts the model before the
    # final prompt and speaks as soon as the final confirms the words (agent/preemption.py).
    partial_prompts: bool = True
    preemption: Preemption = field(default_factory=Preemption)
    # The other documented <ConversationRelay> attributes, typed (agent/relay_options.py).
    relay: RelayOptions = field(default_factory=RelayOptions)
    # Where <Failover> goes: inside each <Language> (the default), as <Failover language="..."> children
    # of <ConversationRelay>, or nowhere ("off": /action still fails over). The element's exact shape
    # is unverified (docs/protocol.md); a TwiML Twilio refuses (64101) resumes on a known-good one.
    failover_twiml: FailoverPlacement = "language"
    # Documented attributes without a typed field, verbatim (e.g. {"customerName": "..."}).
    extra_relay_attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    # People and policies.
    transfer_target: str = "+15555550100"  # a phone number (E.164) or a SIP URI
    human_key: str | None = "0"  # the DTMF key that asks for a person; None disables it
    max_reconnect_attempts: int = 2
    after_reconnect_limit: Literal["transfer", "goodbye"] = "transfer"
    dial_timeout_s: int = 20
    record_call: bool = False
    transcript_retention_days: int = 7

    # The model: who serves it and its id. "bedrock" runs it in your AWS account (IAM, no API key;
    # a model id or a cross-Region inference profile id such as us.amazon.nova-lite-v1:0);
    # "openai" is OpenAI or any OpenAI-compatible server (OPENAI_BASE_URL). LLM_PROVIDER and
    # LLM_MODEL override these two from the environment (README, "Choosing the model").
    llm_provider: Provider = "bedrock"
    llm_model: str = DEFAULT_MODELS["bedrock"]
    # Tried in order when the model before them fails before its first word (an error, throttling,
    # no first token within llm_fallback_after_s); once a reply has started it is never switched.
    # For example (ModelRef("bedrock", "us.amazon.nova-micro-v1:0"), ModelRef("openai", "gpt-4.1-mini")).
    llm_fallbacks: tuple[ModelRef, ...] = ()
    llm_fallback_after_s: float = 2.5
    max_reply_tokens: int = 300
    temperature: float | None = 0.5
    max_history_items: int = 40
    llm_connect_timeout_s: float = 3.0
    llm_first_token_timeout_s: float = 8.0
    llm_token_gap_timeout_s: float = 5.0
    warm_llm_connection: bool = True

    # Tools offered to the model (names from the registry; see agent/tools.py).
    tools: tuple[str, ...] = (
        "transfer_to_human", "end_call", "switch_language", "send_digits", "collect_keys", "lookup_order",
    )  # fmt: skip
    max_tool_rounds: int = 3
    tool_timeout_s: float = 8.0
    filler_after_s: float = 1.5

    # Replies.
    max_reply_chars: int = 900
    turn_budget_s: float = 25.0  # API Gateway gives a route 29 s; stop speaking well before that
    phrases: PhrasePolicy = field(default_factory=PhrasePolicy)

    # Silence, key entry, the call's length, and the record each call leaves (the block below).
    timing: TimingPolicy = field(default_factory=TimingPolicy)
    call_record: CallRecordPolicy = field(default_factory=CallRecordPolicy)
    # Around the call: the prompt's context, the start-of-call hook, what a transfer's callee learns.
    context: ContextPolicy = field(default_factory=ContextPolicy)
    handoff: HandoffPolicy = field(default_factory=HandoffPolicy)

    @cached_property
    def system_prompt(self) -> str:
        return self.system_prompt_file.read_text(encoding="utf-8").strip()

    def llm_chain(self, provider: str | None = None, model: str | None = None) -> tuple[ModelRef, ...]:
        """The models a turn tries, in order (``provider``/``model``: the environment's overrides)."""
        first = ModelRef(self.llm_provider, self.llm_model)
        return resolve_chain(first, self.llm_fallbacks, provider=provider, model=model)

    def language_option(self, code: str) -> LanguageOption | None:
        wanted = code.lower()
        return next((o for o in self.languages if o.code.lower() == wanted), None)

    def speech_for(self, code: str | None) -> LanguageOption:
        """The settings a call in ``code`` speaks with (the agent's own for an unknown language)."""
        option = self.language_option(code) if code else None
        if option is not None:
            return option
        return self.language_option(self.language) or LanguageOption(
            self.language, self.tts_provider, self.voice, self.transcription_provider, self.speech_model
        )

    def validate(self, known_tools: frozenset[str] | None = None) -> AgentConfig:
        """Check everything at start-up; raise one error that lists every problem."""
        problems = [*_problems(self), *around_call_problems(self.context, self.handoff, None)]
        if known_tools is not None:
            problems += [f"tools: unknown tool {t!r}" for t in self.tools if t not in known_tools]
        # Bedrock's rule for tool names (OpenAI's is looser), so a tool works with either provider.
        bad_names = [t for t in self.tools if not _TOOL_NAME.match(t)]
        problems += [f"tools: {t!r} must be a letter then letters, digits or _" for t in bad_names]
        if problems:
            raise ConfigurationError("invalid agent configuration:\n- " + "\n- ".join(problems))
        return self


def _problems(c: AgentConfig) -> list[str]:
    return [*_text_problems(c), *_speech_problems(c), *_policy_problems(c), *_model_problems(c), *_timed_problems(c)]


def _text_problems(c: AgentConfig) -> list[str]:
    p: list[str] = []
    if not c.system_prompt_file.is_file():
        p.append(f"system_prompt_file: {c.system_prompt_file} does not exist")
    elif not c.system_prompt:
        p.append("system_prompt_file is empty")
    for name in ("welcome_greeting", "reconnect_greeting", "apology", "handoff", "goodbye", "refusal"):
        if not getattr(c.lines, name).strip():
            p.append(f"lines.{name} is empty")
    if "{digit}" not in c.lines.dtmf_note:
        p.append("lines.dtmf_note must contain {digit}")
    if "{lang}" not in c.lines.language_note:
        p.append("lines.language_note must contain {lang}")
    return p


def _speech_problems(c: AgentConfig) -> list[str]:
    p: list[str] = []
    if not _LANG.match(c.language):
        p.append(f"language {c.language!r} is not a language tag like en-US")
    if not c.voice.strip():
        p.append("voice is empty (set it explicitly: account defaults differ)")
    if not c.speech_model.strip():
        p.append("speech_model is empty")
    for attr in ("interruptible", "welcome_greeting_interruptible"):
        if getattr(c, attr) not in _INTERRUPTIBLE:
            p.append(f"{attr} must be one of {', '.join(_INTERRUPTIBLE)}")
    return p + _language_problems(c)


def _language_problems(c: AgentConfig) -> list[str]:
    p: list[str] = []
    codes = [o.code.lower() for o in c.languages]
    if len(set(codes)) != len(codes):
        p.append("languages: duplicate codes")
    if c.languages and c.language.lower() not in codes:
        p.append(f"languages must include the call language {c.language}")
    default = c.language_option(c.language)
    if default is not None and not default.in_twiml:
        p.append(f"languages: the call language {c.language} must be in the TwiML (in_twiml=True)")
    for o in c.languages:
        p += _option_problems(o)
    return p


def _option_problems(o: LanguageOption) -> list[str]:
    p: list[str] = []
    if not _LANG.match(o.code):
        p.append(f"languages: {o.code!r} is not a language tag")
    if not o.voice.strip() or not o.speech_model.strip():
        p.append(f"languages: {o.code} needs an explicit voice and speech model")
    if o.code == "multi" and (o.tts_provider != "ElevenLabs" or o.transcription_provider != "Deepgram"):
        p.append("languages: 'multi' needs ElevenLabs speech and Deepgram transcription")
    return p + backup_problems(o.code, o.backups) + hint_problems(o.hints, f"languages: {o.code} hints")


def _policy_problems(c: AgentConfig) -> list[str]:
    p: list[str] = []
    if not (_E164.match(c.transfer_target) or _SIP.match(c.transfer_target)):
        p.append("transfer_target must be an E.164 number (+15551234567) or a SIP URI (sip:agent@example.com)")
    if c.human_key is not None and (len(c.human_key) != 1 or c.human_key not in "0123456789*#"):
        p.append("human_key must be one key (0-9, * or #) or None")
    if not 0 <= c.max_reconnect_attempts <= 10:
        p.append("max_reconnect_attempts must be 0..10")
    if c.after_reconnect_limit not in ("transfer", "goodbye"):
        p.append("after_reconnect_limit must be 'transfer' or 'goodbye'")
    if not 5 <= c.dial_timeout_s <= 600:
        p.append("dial_timeout_s must be 5..600")
    p += extra_attribute_problems(c.extra_relay_attributes) + option_problems(c.relay)
    if c.failover_twiml not in ("language", "relay", "off"):
        p.append("failover_twiml must be language, relay or off")
    if not 1 <= c.transcript_retention_days <= 365:
        p.append("transcript_retention_days must be 1..365")
    return p


def _model_problems(c: AgentConfig) -> list[str]:
    p: list[str] = []
    if not c.llm_model.strip():
        p.append("llm_model is empty")
    p += _fallback_problems(c)
    for attr, low, high in _REPLY_BOUNDS:
        if not low <= getattr(c, attr) <= high:
            p.append(f"{attr} must be {low}..{high}")
    if c.temperature is not None and not 0 <= c.temperature <= 2:
        p.append("temperature must be 0..2 or None")
    return p + _timing_problems(c)


# What a reply may be: (field, lowest, highest).
_REPLY_BOUNDS = (("max_reply_tokens", 16, 4096), ("max_history_items", 2, 200), ("max_tool_rounds", 0, 8))


def _timing_problems(c: AgentConfig) -> list[str]:
    p: list[str] = []
    if not 1 <= c.turn_budget_s <= 27:
        p.append("turn_budget_s must be 1..27 (API Gateway cuts a route at 29 s)")
    if c.tool_timeout_s >= c.turn_budget_s:
        p.append("tool_timeout_s must be shorter than turn_budget_s")
    for attr in ("llm_connect_timeout_s", "llm_first_token_timeout_s", "llm_token_gap_timeout_s"):
        if not 0 < getattr(c, attr) < c.turn_budget_s:
            p.append(f"{attr} must be positive and shorter than turn_budget_s")
    if c.max_reply_chars < 80:
        p.append("max_reply_chars must be at least 80")
    return p


def _fallback_problems(c: AgentConfig) -> list[str]:
    p: list[str] = []
    for ref in (ModelRef(c.llm_provider, c.llm_model), *c.llm_fallbacks):
        p += model_problems(ref)
    if c.llm_fallbacks:
        if len(set(c.llm_chain())) != 1 + len(c.llm_fallbacks):
            p.append("llm_fallbacks must not repeat a model")
        # Every model but the last waits llm_fallback_after_s; the last needs time of its own.
        waited = c.llm_fallback_after_s * len(c.llm_fallbacks)
        if c.llm_fallback_after_s <= 0 or waited + 1.0 > c.llm_first_token_timeout_s:
            p.append(
                "llm_fallback_after_s times the number of fallbacks must leave the last model at least "
                "1 s of llm_first_token_timeout_s"
            )
    return p


_FIELD_TYPES = ("string", "number", "integer", "boolean")


def _timed_problems(c: AgentConfig) -> list[str]:
    t, p = c.timing, []
    if t.silence_after_s != 0 and not 3 <= t.silence_after_s <= 600:
        p.append("timing.silence_after_s must be 0 (off) or 3..600")
    if t.max_call_s != 0 and not 60 <= t.max_call_s <= 4 * 3600:
        p.append("timing.max_call_s must be 0 (no limit) or 60..14400")
    if not 2 <= t.key_timeout_s <= 60 or not 0 <= t.key_reprompts <= 3 or not 1 <= t.max_keys <= 64:
        p.append("timing: key_timeout_s must be 2..60, key_reprompts 0..3, max_keys 1..64")
    if not t.lines:
        p.append("timing.lines needs the lines of at least one language")
    for code, lines in t.lines.items():
        if not _LANG.match(code):
            p.append(f"timing.lines: {code!r} is not a language tag")
        empty = [n for n in ("silence_goodbye", "time_limit", "key_prompt", "key_reprompt") if not getattr(lines, n)]
        if not lines.reminders or any(not r.strip() for r in lines.reminders) or empty:
            p.append(f"timing.lines[{code}]: every line needs text (and at least one reminder)")
    return p + _record_problems(c)


def _record_problems(c: AgentConfig) -> list[str]:
    p: list[str] = []
    schema = c.call_record.fields_schema
    if schema is not None:
        props = schema.get("properties")
        if schema.get("type") != "object" or not isinstance(props, Mapping) or not props:
            p.append("call_record.fields_schema must be an object schema with properties")
        else:
            for name, spec in props.items():
                kind = spec.get("type") if isinstance(spec, Mapping) else None
                if not _TOOL_NAME.match(str(name)) or kind not in _FIELD_TYPES:
                    p.append(f"call_record.fields_schema: {name!r} needs a plain name and a type in {_FIELD_TYPES}")
    if not 80 <= c.call_record.max_summary_chars <= 4000:
        p.append("call_record.max_summary_chars must be 80..4000")
    return p


AGENT = AgentConfig()
