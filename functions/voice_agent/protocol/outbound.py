"""Messages the app sends to Twilio. Each is validated when built, so an invalid frame (one Twilio
would reject with error 64107) cannot be constructed, let alone sent.

The shapes, their Twilio sources and when the agent sends each: ``docs/protocol.md``, "Messages
the agent sends".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from voice_agent.errors import OutboundValidationError
from voice_agent.protocol.checks import check_lang as _check_lang
from voice_agent.protocol.checks import check_optional_bool as _check_optional_bool
from voice_agent.protocol.live_config import Config, Hints, LanguageSettings

# API Gateway's WebSocket frame limit is 32 KB; stay below it with room for the envelope.
MAX_FRAME_BYTES: Final = 32 * 1024

_DIGITS = re.compile(r"^[0-9w#*]+$")
_MAX_PLAY_LOOP: Final = 1000


@dataclass(frozen=True, slots=True)
class Text:
    """Text to speak. Tokens are spoken as they arrive; ``last=True`` closes the talk cycle."""

    token: str
    last: bool = False
    lang: str | None = None
    interruptible: bool | None = None
    preemptible: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.token, str):
            raise OutboundValidationError("text.token must be a string")
        if not isinstance(self.last, bool):
            raise OutboundValidationError("text.last must be a boolean")
        _check_lang(self.lang, "text.lang")
        _check_optional_bool(self.interruptible, "text.interruptible")
        _check_optional_bool(self.preemptible, "text.preemptible")

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"type": "text", "token": self.token, "last": self.last}
        if self.lang is not None:
            wire["lang"] = self.lang
        if self.interruptible is not None:
            wire["interruptible"] = self.interruptible
        if self.preemptible is not None:
            wire["preemptible"] = self.preemptible
        return wire


@dataclass(frozen=True, slots=True)
class Play:
    """Play an audio file by URL (``loop=0`` means the maximum, 1,000 times)."""

    source: str
    loop: int | None = None
    interruptible: bool | None = None
    preemptible: bool | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.source) if isinstance(self.source, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise OutboundValidationError("play.source must be an http(s) URL")
        if self.loop is not None and (
            isinstance(self.loop, bool) or not isinstance(self.loop, int) or not 0 <= self.loop <= _MAX_PLAY_LOOP
        ):
            raise OutboundValidationError("play.loop must be an integer from 0 to 1000")
        _check_optional_bool(self.interruptible, "play.interruptible")
        _check_optional_bool(self.preemptible, "play.preemptible")

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"type": "play", "source": self.source}
        if self.loop is not None:
            wire["loop"] = self.loop
        if self.interruptible is not None:
            wire["interruptible"] = self.interruptible
        if self.preemptible is not None:
            wire["preemptible"] = self.preemptible
        return wire


@dataclass(frozen=True, slots=True)
class SendDigits:
    """Send DTMF tones into the call (``w`` is a half-second pause)."""

    digits: str

    def __post_init__(self) -> None:
        if not isinstance(self.digits, str) or not _DIGITS.match(self.digits):
            raise OutboundValidationError("sendDigits.digits may only hold 0-9, w, # and *")

    def to_wire(self) -> dict[str, object]:
        return {"type": "sendDigits", "digits": self.digits}


@dataclass(frozen=True, slots=True)
class Language:
    """Switch the speech (TTS) and/or transcription (STT) language for what follows.

    ``declare``: the settings of a language the TwiML did not declare, sent in the same message
    (the extended ``language`` message of 2026-10-28; its shape is unverified, ``live_config.py``).
    """

    tts_language: str | None = None
    transcription_language: str | None = None
    declare: tuple[LanguageSettings, ...] = ()

    def __post_init__(self) -> None:
        if self.tts_language is None and self.transcription_language is None:
            raise OutboundValidationError("language needs ttsLanguage or transcriptionLanguage")
        _check_lang(self.tts_language, "language.ttsLanguage")
        _check_lang(self.transcription_language, "language.transcriptionLanguage")
        if not all(isinstance(x, LanguageSettings) for x in self.declare):
            raise OutboundValidationError("language.declare takes LanguageSettings")
        wanted = {c.lower() for c in (self.tts_language, self.transcription_language) if c is not None}
        if any(x.code.lower() not in wanted for x in self.declare):
            raise OutboundValidationError("language declares settings for a language it does not switch to")

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"type": "language"}
        if self.tts_language is not None:
            wire["ttsLanguage"] = self.tts_language
        if self.transcription_language is not None:
            wire["transcriptionLanguage"] = self.transcription_language
        if self.declare:
            wire["languages"] = [x.to_wire() for x in self.declare]
        return wire


@dataclass(frozen=True, slots=True)
class End:
    """End the relay session (not the call); ``handoff_data`` reaches the ``<Connect action>`` URL."""

    handoff_data: str | None = None

    def __post_init__(self) -> None:
        if self.handoff_data is not None and not isinstance(self.handoff_data, str):
            raise OutboundValidationError("end.handoffData must be a string (stringify JSON first)")

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"type": "end"}
        if self.handoff_data is not None:
            wire["handoffData"] = self.handoff_data
        return wire


OutboundMessage = Text | Play | SendDigits | Language | End | Config | Hints


def encode(message: OutboundMessage) -> bytes:
    """The frame for one message; refuses frames API Gateway would not carry."""
    data = json.dumps(message.to_wire(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_FRAME_BYTES:
        raise OutboundValidationError(f"{message.to_wire()['type']} frame of {len(data)} bytes exceeds 32 KB")
    return data


def split_text(message: Text, max_frame_bytes: int = MAX_FRAME_BYTES) -> list[Text]:
    """Split a text message whose frame would exceed the limit; only the final part keeps ``last``.

    Sizes are measured as encoded (JSON escapes included), and UTF-8 sequences are never cut.
    """
    if _frame_size(message) <= max_frame_bytes:
        return [message]
    budget = max_frame_bytes - _frame_size(
        Text("", last=False, lang=message.lang, interruptible=message.interruptible, preemptible=message.preemptible)
    )
    if budget < 16:
        raise OutboundValidationError("frame limit too small for any text")
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for ch in message.token:
        cost = len(json.dumps(ch, ensure_ascii=False).encode("utf-8")) - 2
        if used + cost > budget:
            chunks.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += cost
    chunks.append("".join(current))
    return [
        Text(
            token=chunk,
            last=message.last and i == len(chunks) - 1,
            lang=message.lang,
            interruptible=message.interruptible,
            preemptible=message.preemptible,
        )
        for i, chunk in enumerate(chunks)
    ]


def _frame_size(message: Text) -> int:
    return len(json.dumps(message.to_wire(), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
