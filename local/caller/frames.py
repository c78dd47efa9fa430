"""What an app may send to ConversationRelay, checked the way Twilio checks it.

Written from Twilio's documentation of these messages (``docs/protocol.md``, "Messages the agent
sends", has the sources), not from the runtime's own encoder, so it catches what the runtime gets
wrong. Anything else (an API
Gateway error frame like ``{"message": "Internal server error", ...}``, a binary frame, a typo) is
a protocol error: Twilio answers it with an ``error`` message (64107), and ten in a row end the
session.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

OUTBOUND_TYPES: Final = frozenset({"text", "play", "sendDigits", "language", "end", "config", "hints"})
_LANG = re.compile(r"^(multi|[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*)$")
_DIGITS = re.compile(r"^[0-9w#*]+$")
_FIELDS: Final = {
    "text": {"type", "token", "last", "lang", "interruptible", "preemptible"},
    "play": {"type", "source", "loop", "interruptible", "preemptible"},
    "sendDigits": {"type", "digits"},
    "language": {"type", "ttsLanguage", "transcriptionLanguage", "languages"},
    "end": {"type", "handoffData"},
    # Mid-call configuration (2026-10-28). Field names are the TwiML attribute names they change:
    # this project's reading, unverified (docs/protocol.md, "Messages the agent sends").
    "config": {
        "type",
        "interruptible",
        "preemptible",
        "dtmfDetection",
        "reportInputDuringAgentSpeech",
        "partialPrompts",
        "speechTimeout",
        "echoPromptFiltering",
        "interruptSensitivity",
        "ignoreBackchannel",
        "profanityFilter",
        "eotThreshold",
        "languages",
    },
    "hints": {"type", "hints", "language"},
}
_LANGUAGE_FIELDS: Final = {"code", "ttsProvider", "voice", "transcriptionProvider", "speechModel", "hints"}
_MODES: Final = ("any", "speech", "dtmf", "none")


@dataclass(frozen=True, slots=True)
class Frame:
    """A valid outbound message (``data`` is the parsed JSON object)."""

    type: str
    data: dict[str, Any]

    @property
    def token(self) -> str:
        return str(self.data.get("token", ""))

    @property
    def last(self) -> bool:
        return self.data.get("last") is True


class ProtocolError(ValueError):
    """A frame ConversationRelay would reject (error 64107)."""

    def __init__(self, reason: str, raw: str | bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw

    def excerpt(self, limit: int = 160) -> str:
        text = self.raw if isinstance(self.raw, str) else repr(self.raw)
        return text if len(text) <= limit else text[: limit - 3] + "..."


def validate(raw: str | bytes) -> Frame:
    """The frame as a :class:`Frame`, or :class:`ProtocolError` saying why Twilio would refuse it."""
    if isinstance(raw, bytes):
        raise ProtocolError("binary frame (ConversationRelay takes JSON text frames)", raw)
    try:
        data = json.loads(raw)
    except ValueError:
        raise ProtocolError("not JSON", raw) from None
    if not isinstance(data, dict):
        raise ProtocolError("not a JSON object", raw)
    kind = data.get("type")
    if not isinstance(kind, str):
        if "message" in data and "connectionId" in data:
            raise ProtocolError(f"API Gateway error frame: {data.get('message')!r}", raw)
        raise ProtocolError("no 'type' field", raw)
    if kind not in OUTBOUND_TYPES:
        raise ProtocolError(f"unknown type {kind!r}", raw)
    unknown = sorted(set(data) - _FIELDS[kind])
    if unknown:
        raise ProtocolError(f"{kind}: unknown field(s) {', '.join(unknown)}", raw)
    problem = _problem(kind, data)
    if problem:
        raise ProtocolError(f"{kind}: {problem}", raw)
    return Frame(type=kind, data=data)


def _problem(kind: str, d: dict[str, Any]) -> str | None:
    flags = ("last", "interruptible", "preemptible") if kind in ("text", "play") else ("preemptible",)
    for name in flags:
        if name in d and not isinstance(d[name], bool):
            return f"{name} must be a boolean"
    return _CHECKS[kind](d)


def _text(d: dict[str, Any]) -> str | None:
    if not isinstance(d.get("token"), str):
        return "token must be a string"
    if "lang" in d and not (isinstance(d["lang"], str) and _LANG.match(d["lang"])):
        return "lang must be a language tag"
    return None


def _play(d: dict[str, Any]) -> str | None:
    source = d.get("source")
    parts = urlsplit(source) if isinstance(source, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return "source must be an http(s) URL"
    loop = d.get("loop", 1)
    if isinstance(loop, bool) or not isinstance(loop, int) or not 0 <= loop <= 1000:
        return "loop must be an integer from 0 to 1000"
    return None


def _send_digits(d: dict[str, Any]) -> str | None:
    if not (isinstance(d.get("digits"), str) and _DIGITS.match(d["digits"])):
        return "digits may only hold 0-9, w, # and *"
    return None


def _language(d: dict[str, Any]) -> str | None:
    tts, stt = d.get("ttsLanguage"), d.get("transcriptionLanguage")
    if tts is None and stt is None:
        return "needs ttsLanguage or transcriptionLanguage"
    for value in (tts, stt):
        if value is not None and not (isinstance(value, str) and _LANG.match(value)):
            return "languages must be language tags"
    return _languages(d.get("languages"))


def _languages(value: object) -> str | None:
    """A list of ``<Language>``-shaped objects: a code and at least one setting."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        return "languages must be a non-empty list"
    for entry in value:
        if not isinstance(entry, dict) or not (isinstance(entry.get("code"), str) and _LANG.match(entry["code"])):
            return "each language needs a code"
        unknown = set(entry) - _LANGUAGE_FIELDS
        if unknown or len(entry) < 2:
            return f"language {entry.get('code')}: unknown or missing settings"
        if any(not isinstance(v, str) or not v for v in entry.values()):
            return "language settings are non-empty strings"
    return None


def _config(d: dict[str, Any]) -> str | None:
    if len(d) < 2:
        return "changes nothing"
    for name in ("interruptible", "reportInputDuringAgentSpeech"):
        if name in d and d[name] not in _MODES:
            return f"{name} must be one of {', '.join(_MODES)}"
    for name in ("dtmfDetection", "partialPrompts", "echoPromptFiltering", "ignoreBackchannel", "profanityFilter"):
        if name in d and not isinstance(d[name], bool):
            return f"{name} must be a boolean"
    if "interruptSensitivity" in d and d["interruptSensitivity"] not in ("low", "medium", "high"):
        return "interruptSensitivity must be low, medium or high"
    timeout = d.get("speechTimeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        return "speechTimeout must be a whole number of milliseconds"
    return _languages(d.get("languages"))


def _hints(d: dict[str, Any]) -> str | None:
    if not isinstance(d.get("hints"), str):
        return "hints must be a comma-separated string"
    if "language" in d and not (isinstance(d["language"], str) and _LANG.match(d["language"])):
        return "language must be a language tag"
    return None


def _end(d: dict[str, Any]) -> str | None:
    if "handoffData" in d and not isinstance(d["handoffData"], str):
        return "handoffData must be a string (JSON stringified)"
    return None


_CHECKS: Final[dict[str, Callable[[dict[str, Any]], str | None]]] = {
    "text": _text,
    "play": _play,
    "sendDigits": _send_digits,
    "language": _language,
    "end": _end,
    "config": _config,
    "hints": _hints,
}
