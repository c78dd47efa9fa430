"""Messages Twilio sends over the ConversationRelay WebSocket, parsed into typed values.

Parsing is tolerant where the protocol grows (unknown ``type`` values and extra fields are reported,
not fatal) and strict where a wrong value would mislead the agent (a ``prompt`` without text is
malformed). The shapes, their Twilio sources and what is unverified: ``docs/protocol.md``,
"Messages Twilio sends".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from voice_agent.errors import MalformedMessageError
from voice_agent.protocol.text import clean_text

MAX_FRAME_BYTES: Final = 128 * 1024  # API Gateway's message limit; larger frames never arrive
_LANG_TAG: Final = re.compile(r"^(multi|[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3})$")


@dataclass(frozen=True, slots=True)
class Setup:
    """First frame of every session. A new session on the same call keeps ``call_sid``."""

    session_id: str
    call_sid: str
    account_sid: str = ""
    parent_call_sid: str = ""
    from_number: str = ""
    to_number: str = ""
    forwarded_from: str = ""
    caller_name: str = ""
    direction: str = ""
    call_type: str = ""
    call_status: str = ""
    custom_parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Prompt:
    """Caller speech. ``last=False`` frames are cumulative partials; only ``last=True`` is a turn."""

    voice_prompt: str
    lang: str | None = None
    last: bool = True


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The caller barged in; ``utterance_until_interrupt`` is what they actually heard."""

    utterance_until_interrupt: str = ""
    duration_until_interrupt_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """Twilio reports a problem, typically with a frame we sent (64107)."""

    description: str = ""


@dataclass(frozen=True, slots=True)
class Info:
    """Opt-in telemetry (``debug`` / ``events`` attributes)."""

    name: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class SpeakerEvent:
    """Who is speaking on the call: ``info`` ``agentSpeaking`` / ``clientSpeaking`` with ``on`` or
    ``off`` (the ``speaker-events`` debug option, ``docs/protocol.md``)."""

    who: Literal["agent", "client"]
    speaking: bool


@dataclass(frozen=True, slots=True)
class ConfigUpdated:
    """Twilio changed the session's configuration (a provider failover, or a ``config`` message
    applied): the providers it names, if any. Only provider names are kept, never other values."""

    tts_provider: str | None = None
    transcription_provider: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Unknown:
    """A well-formed frame of a type this version does not know (the protocol keeps growing)."""

    type: str


InboundMessage = Setup | Prompt | Dtmf | Interrupt | ErrorReport | Info | SpeakerEvent | ConfigUpdated | Unknown


@dataclass(frozen=True, slots=True)
class Parsed:
    message: InboundMessage
    # Names (never values) of fields this version does not model, for a debug log line.
    extra_fields: tuple[str, ...] = ()


_KNOWN_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "setup": frozenset(
        {
            "type",
            "sessionId",
            "callSid",
            "accountSid",
            "parentCallSid",
            "from",
            "to",
            "forwardedFrom",
            "callerName",
            "direction",
            "callType",
            "callStatus",
            "customParameters",
        }
    ),
    "prompt": frozenset({"type", "voicePrompt", "lang", "last"}),
    "dtmf": frozenset({"type", "digit"}),
    "interrupt": frozenset({"type", "utteranceUntilInterrupt", "durationUntilInterruptMs"}),
    "error": frozenset({"type", "description"}),
    "info": frozenset({"type", "name", "value"}),
    "configUpdated": frozenset({"type"}),  # its fields are read by name; the rest is reported
}


def parse_inbound(frame: str | bytes | None) -> Parsed:
    """Parse one WebSocket text frame. Raises :class:`MalformedMessageError` for unusable input."""
    data = _json_object(_text(frame))
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedMessageError("frame has no string 'type'")
    parser = _PARSERS.get(kind)
    if parser is None:
        return Parsed(Unknown(type=kind[:64]))
    message = parser(data)
    extra = tuple(sorted(str(k)[:64] for k in data if k not in _KNOWN_FIELDS[kind]))
    return Parsed(message, extra)


def _text(frame: str | bytes | None) -> str:
    if frame is None:
        raise MalformedMessageError("empty frame")
    if len(frame) > MAX_FRAME_BYTES:
        raise MalformedMessageError("frame too large")
    if isinstance(frame, str):
        return frame
    try:
        return bytes(frame).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessageError("frame is not UTF-8 text") from exc


def _json_object(text: str) -> dict[str, Any]:
    """The frame's JSON object, every string in it cleaned (``protocol/text.py``)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessageError("frame is not JSON") from exc
    if not isinstance(data, dict):
        raise MalformedMessageError("frame is not a JSON object")
    try:
        cleaned: dict[str, Any] = _cleaned(data)
    except RecursionError as exc:
        raise MalformedMessageError("frame is nested too deeply") from exc
    return cleaned


def _parse_setup(d: Mapping[str, Any]) -> Setup:
    params = d.get("customParameters")
    custom: dict[str, str] = {}
    if isinstance(params, Mapping):
        custom = {str(k): _as_text(v) for k, v in params.items()}
    elif params is not None:
        raise MalformedMessageError("setup.customParameters is not an object")
    return Setup(
        session_id=_required_str(d, "sessionId"),
        call_sid=_required_str(d, "callSid"),
        account_sid=_optional_str(d, "accountSid"),
        parent_call_sid=_optional_str(d, "parentCallSid"),
        from_number=_optional_str(d, "from"),
        to_number=_optional_str(d, "to"),
        forwarded_from=_optional_str(d, "forwardedFrom"),
        caller_name=_optional_str(d, "callerName"),
        direction=_optional_str(d, "direction"),
        call_type=_optional_str(d, "callType"),
        call_status=_optional_str(d, "callStatus"),
        custom_parameters=custom,
    )


def _parse_prompt(d: Mapping[str, Any]) -> Prompt:
    text = d.get("voicePrompt")
    if not isinstance(text, str):
        raise MalformedMessageError("prompt.voicePrompt is not a string")
    lang = d.get("lang")
    return Prompt(
        voice_prompt=text,
        # a language tag or nothing: it reaches the model's system message (turn_engine)
        lang=lang if isinstance(lang, str) and _LANG_TAG.match(lang) else None,
        last=_bool(d.get("last"), default=True),
    )


def _parse_dtmf(d: Mapping[str, Any]) -> Dtmf:
    digit = d.get("digit")
    if isinstance(digit, int) and not isinstance(digit, bool):
        digit = str(digit)
    if not isinstance(digit, str) or len(digit) != 1 or digit not in "0123456789*#ABCDabcd":
        raise MalformedMessageError("dtmf.digit is not one key")
    return Dtmf(digit=digit.upper())


def _parse_interrupt(d: Mapping[str, Any]) -> Interrupt:
    heard = d.get("utteranceUntilInterrupt")
    return Interrupt(
        utterance_until_interrupt=heard if isinstance(heard, str) else "",
        duration_until_interrupt_ms=_int_or_none(d.get("durationUntilInterruptMs")),
    )


def _parse_error(d: Mapping[str, Any]) -> ErrorReport:
    return ErrorReport(description=_as_text(d.get("description", "")))


def _parse_info(d: Mapping[str, Any]) -> Info | SpeakerEvent | ConfigUpdated:
    name = _as_text(d.get("name", ""))
    value = d.get("value", "")
    if name in _SPEAKERS:
        speaking = _on_off(value)
        if speaking is not None:
            return SpeakerEvent(who=_SPEAKERS[name], speaking=speaking)
    if name == "configUpdated":
        return _config_updated(value)
    return Info(name=name, value=_as_text(value))


def _parse_config_updated(d: Mapping[str, Any]) -> ConfigUpdated:
    return _config_updated(d)


_SPEAKERS: Final[Mapping[str, Literal["agent", "client"]]] = {"agentSpeaking": "agent", "clientSpeaking": "client"}
_ON: Final = frozenset({"on", "true", "start", "started"})
_OFF: Final = frozenset({"off", "false", "stop", "stopped"})
# Where a configUpdated event may name its providers (its shape is not documented anywhere readable:
# a JSON string or an object in ``value``, or the fields of a top-level ``configUpdated`` message).
_TTS_KEYS: Final = ("ttsProvider",)
_STT_KEYS: Final = ("transcriptionProvider", "sttProvider", "asrProvider")
_PROVIDER_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")


def _on_off(value: object) -> bool | None:
    text = str(value).strip().lower() if isinstance(value, str | bool) else ""
    return True if text in _ON else False if text in _OFF else None


def _config_updated(value: object) -> ConfigUpdated:
    data = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError:
            data = None
    found: dict[str, str] = {}
    _collect(data, found, depth=0)
    return ConfigUpdated(
        tts_provider=next((found[k] for k in _TTS_KEYS if k in found), None),
        transcription_provider=next((found[k] for k in _STT_KEYS if k in found), None),
        language=found.get("language"),
    )


def _wanted(key: str, value: str) -> bool:
    if key in (*_TTS_KEYS, *_STT_KEYS):
        return _PROVIDER_NAME.match(value) is not None
    return key == "language" and len(value) <= 16


def _collect(data: object, found: dict[str, str], *, depth: int) -> None:
    """Provider names (and the language) wherever the event puts them, three levels deep at most."""
    if depth > 3 or not isinstance(data, Mapping):
        return
    for key, item in data.items():
        if isinstance(item, str) and _wanted(key, item):
            found.setdefault(key, item)
        else:
            _collect(item, found, depth=depth + 1)


_PARSERS: Final[Mapping[str, Callable[[Mapping[str, Any]], InboundMessage]]] = {
    "setup": _parse_setup,
    "prompt": _parse_prompt,
    "dtmf": _parse_dtmf,
    "interrupt": _parse_interrupt,
    "error": _parse_error,
    "info": _parse_info,
    "configUpdated": _parse_config_updated,
}


def _cleaned(value: Any) -> Any:
    """Every string in the frame without what cannot be stored or sent on (``protocol/text.py``)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value


def _required_str(d: Mapping[str, Any], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedMessageError(f"missing or non-string {key!r}")
    return value


def _optional_str(d: Mapping[str, Any], key: str) -> str:
    value = d.get(key)
    return value if isinstance(value, str) else ""


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _bool(value: object, *, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def _int_or_none(value: object) -> int | None:
    """``durationUntilInterruptMs`` arrives as a number or as a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if math.isfinite(number) and number >= 0 else None
    return None
