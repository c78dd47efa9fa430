"""Twilio's webhook forms as typed values (the only place that reads the raw form fields)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from voice_agent.core.call_flow import SessionEnd
from voice_agent.protocol.parameters import bounded_parameters

_SID = re.compile(r"^CA[0-9a-fA-F]{32}$|^CA[0-9A-Za-z_-]{6,64}$")

Form = Mapping[str, Sequence[str]]


class FormError(ValueError):
    """A required field is missing or malformed."""


def first(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _call_sid(form: Form) -> str:
    sid = first(form, "CallSid")
    if not sid or not _SID.match(sid):
        raise FormError("CallSid missing or malformed")
    return sid


@dataclass(frozen=True, slots=True)
class VoiceRequest:
    call_sid: str
    direction: str = ""
    from_number: str = ""
    to_number: str = ""
    call_status: str = ""
    answered_by: str | None = None  # answering-machine detection on outbound calls
    parameters: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, form: Form, query: Mapping[str, str]) -> VoiceRequest:
        return cls(
            call_sid=_call_sid(form),
            direction=first(form, "Direction") or "",
            from_number=first(form, "From") or "",
            to_number=first(form, "To") or "",
            call_status=first(form, "CallStatus") or "",
            answered_by=first(form, "AnsweredBy"),
            parameters=custom_parameters(query),
        )


def custom_parameters(query: Mapping[str, str]) -> dict[str, str]:
    """The webhook URL's query (set on the number or by the outbound-call command) becomes
    ``<Parameter>``s, so ``setup.customParameters`` carries it. Bounded and name-checked."""
    return bounded_parameters(query)[0]


def session_end(form: Form) -> SessionEnd:
    return SessionEnd(
        call_sid=_call_sid(form),
        call_status=first(form, "CallStatus") or "",
        session_status=first(form, "SessionStatus") or "",
        handoff_data=first(form, "HandoffData"),
        error_code=first(form, "ErrorCode"),
        session_id=first(form, "SessionId") or None,
        error_message=first(form, "ErrorMessage"),
    )


@dataclass(frozen=True, slots=True)
class DialResult:
    call_sid: str
    dial_status: str
    duration_s: int | None = None  # DialCallDuration: how long the person and the caller talked

    @classmethod
    def parse(cls, form: Form) -> DialResult:
        duration = (first(form, "DialCallDuration") or "").strip()
        return cls(
            call_sid=_call_sid(form),
            dial_status=(first(form, "DialCallStatus") or "").lower(),
            duration_s=int(duration) if duration.isdigit() and len(duration) < 9 else None,
        )

    @property
    def connected(self) -> bool:
        return self.dial_status in ("completed", "answered")
