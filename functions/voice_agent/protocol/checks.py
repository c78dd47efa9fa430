"""Validation rules shared by the outbound messages (``outbound.py``, ``live_config.py``): a value
Twilio would refuse with error 64107 is refused here, before anything is sent."""

from __future__ import annotations

import re
from typing import Final

from voice_agent.errors import OutboundValidationError

LANG: Final = re.compile(r"^(multi|[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*)$")
INTERRUPTIBLE: Final = ("any", "speech", "dtmf", "none")
TTS_PROVIDERS: Final = ("Google", "Amazon", "ElevenLabs")
STT_PROVIDERS: Final = ("Google", "Deepgram")
MAX_HINTS: Final = 100
MAX_HINT_CHARS: Final = 100
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,99}$")  # a voice or speech model id


def check_lang(value: str | None, what: str) -> None:
    if value is not None and (not isinstance(value, str) or not LANG.match(value)):
        raise OutboundValidationError(f"{what} is not a language tag: {value!r}")


def check_optional_bool(value: object, what: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise OutboundValidationError(f"{what} must be a boolean")


def check_choice(value: object, choices: tuple[str, ...], what: str) -> None:
    if value is not None and value not in choices:
        raise OutboundValidationError(f"{what} must be one of {', '.join(choices)}")


def check_name(value: object, what: str) -> None:
    """A voice or speech model identifier (``en-US-Chirp3-HD-Aoede``, ``nova-3-general``)."""
    if value is not None and (not isinstance(value, str) or not _NAME.match(value)):
        raise OutboundValidationError(f"{what} is not a voice or model name: {value!r}")


def check_hints(hints: tuple[str, ...], what: str) -> None:
    """Words or phrases that help recognition: sent comma-separated, so none may hold a comma."""
    if not isinstance(hints, tuple) or len(hints) > MAX_HINTS:
        raise OutboundValidationError(f"{what}: at most {MAX_HINTS} hints, as a tuple")
    for hint in hints:
        if not isinstance(hint, str) or not hint.strip() or "," in hint or len(hint) > MAX_HINT_CHARS:
            raise OutboundValidationError(f"{what}: each hint is 1 to {MAX_HINT_CHARS} characters without a comma")


def check_int_range(value: object, low: int, high: int, what: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
        raise OutboundValidationError(f"{what} must be an integer from {low} to {high}")


def check_float_range(value: object, low: float, high: float, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise OutboundValidationError(f"{what} must be a number from {low} to {high}")
