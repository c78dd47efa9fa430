"""One call's context: who called whom, which agent answered, the call's custom parameters and
what the start-of-call hook found (``docs/agents.md``).

Setup writes it on the connection item and every turn's ``start_turn`` reads it back in the same
request that takes the generation, so a turn knows its context without a request of its own; the
hook's result is written to the call item and the connection item, and a resumed socket's setup
copies it over (it survives reconnects).

Tools receive the full numbers (a tool may need them to find a customer); ``log_fields`` is what a
log line may carry (numbers masked, parameter and hook names without their values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from voice_agent.log import mask_phone

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CallContext:
    call_sid: str
    agent: str  # the name of the agent that answered (its folder in the agents folder)
    caller: str = ""  # From, E.164 (the caller on an inbound call, this number on an outbound one)
    called: str = ""  # To
    direction: str = ""  # "inbound", "outbound-api", ...
    language: str | None = None  # the call's current language, if it switched
    parameters: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # custom <Parameter>s
    hook: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # what the start-of-call hook added

    @property
    def inbound(self) -> bool:
        return self.direction in ("", "inbound")

    @property
    def customer_number(self) -> str:
        """The other party's number: the caller on an inbound call, the called number on an
        outbound one."""
        return self.caller if self.inbound else self.called

    def with_hook(self, values: Mapping[str, str]) -> CallContext:
        return replace(self, hook=MappingProxyType(dict(values)))

    def with_language(self, language: str | None) -> CallContext:
        return self if language is None else replace(self, language=language)

    def log_fields(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "direction": self.direction,
            "from": mask_phone(self.caller),
            "to": mask_phone(self.called),
            "parameters": sorted(self.parameters),
            "hook": sorted(self.hook),
        }

    def __repr__(self) -> str:  # never a full number in a log line or a traceback
        return f"CallContext({self.log_fields()!r})"
