"""The system prompt as a template, rendered for each call from its context.

A placeholder is ``{{name}}`` or ``{{name|fallback}}``. Names:

| name                         | value                                                           |
|------------------------------|-----------------------------------------------------------------|
| ``agent_name``               | the agent's ``name``                                            |
| ``today``, ``time``          | the business's local date and time (``context.timezone``)       |
| ``timezone``                 | that time zone's name                                           |
| ``direction``                | ``inbound`` or ``outbound``                                     |
| ``customer_number``          | the other party's number (E.164)                                |
| ``language``                 | the call's language                                             |
| ``param.NAME``               | a custom parameter of the call (the webhook URL's query)        |
| ``hook.NAME``                | a value the start-of-call hook returned                         |

Missing values are explicit: a placeholder without a value takes its fallback; without a fallback,
the whole line it is on is left out (write "The caller is {{hook.caller_name}}." on a line of its
own and the line is there only for a known caller).

Values from outside the agent (``param.*``, ``hook.*``, the number) are data, never instructions:
each is rendered in double quotes, on the line the template put it, and a value that could break out
of that line or pass for markup (a line break, a control character, quotes, braces, angle
brackets, backticks, or more than ``MAX_VALUE_CHARS`` characters) is left out as if missing, with
a log line that names the placeholder, never the value. The output guard's leak check compares
replies with the prompt rendered without a call (``guarded_text``), so the caller's own details
never count as the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voice_agent.core.call_context import CallContext
from voice_agent.log import logger

if TYPE_CHECKING:
    from voice_agent.agent.config import AgentConfig

MAX_VALUE_CHARS: Final = 120
_PLACEHOLDER: Final = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:\|([^{}]*))?\}\}")
_OPEN: Final = re.compile(r"\{\{|\}\}")
_PLAIN: Final = frozenset({"agent_name", "today", "time", "timezone", "direction", "customer_number", "language"})
_OUTSIDE: Final = frozenset({"customer_number"})  # plain names whose value comes from outside the agent
_PREFIXES: Final = ("param.", "hook.")
_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\"{}<>`]")


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    fallback: str | None


def template_problems(template: str) -> list[str]:
    """What is wrong with a template (unknown names, unbalanced braces), for the cold-start check."""
    p: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in _PLAIN and not (name.startswith(_PREFIXES) and name.count(".") == 1 and name[-1] != "."):
            p.append(f"prompt: unknown placeholder {{{{{name}}}}}")
    if _OPEN.search(_PLACEHOLDER.sub("", template)):
        p.append("prompt: a '{{' or '}}' that is not a placeholder like {{hook.caller_name}}")
    return p


def render(template: str, context: CallContext | None, *, agent_name: str, timezone: str, now: datetime) -> str:
    """The system prompt for this call; without a context (a call set up before this version),
    every placeholder is missing."""
    lines = []
    values = _values(context, agent_name, timezone, now)
    for line in template.split("\n"):
        rendered = _line(line, values)
        if rendered is not None:
            lines.append(rendered)
    return "\n".join(lines).strip()


def _line(line: str, values: Mapping[str, str | None]) -> str | None:
    if "{{" not in line:
        return line
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        name, fallback = match.group(1), match.group(2)
        value = values.get(name)
        if value is not None and (name in _OUTSIDE or name.startswith(_PREFIXES)):
            value = _data(name, value)
        if value is None:
            if fallback is None:
                missing = True
                return ""
            return fallback.strip()
        return value

    out = _PLACEHOLDER.sub(fill, line)
    return None if missing else out


def _values(context: CallContext | None, agent_name: str, timezone: str, now: datetime) -> dict[str, str | None]:
    local = now.astimezone(_zone(timezone))
    values: dict[str, str | None] = {
        "agent_name": agent_name,
        "today": f"{local:%A} {local.day} {local:%B %Y}",
        "time": local.strftime("%H:%M"),
        "timezone": timezone,
    }
    if context is None:
        return values
    values["direction"] = "inbound" if context.inbound else "outbound"
    values["language"] = context.language
    values["customer_number"] = context.customer_number
    values.update({f"param.{name}": value for name, value in context.parameters.items()})
    values.update({f"hook.{name}": value for name, value in context.hook.items()})
    return values


def _data(name: str, value: str) -> str | None:
    if not value:
        return None
    if len(value) > MAX_VALUE_CHARS or _UNSAFE.search(value):
        logger.warning("a call value does not fit the prompt; left out", extra={"placeholder": name})
        return None
    return f'"{value}"'


@lru_cache(maxsize=32)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # A name the time zone database (the tzdata package, shipped in the asset) does not know.
        logger.warning("time zone not found; the prompt's date and time are UTC", extra={"timezone": name})
        return UTC


def now_utc() -> datetime:
    return datetime.now(UTC)


def guarded_text(agent: AgentConfig) -> str:
    """What the output guard keeps the agent from reciting: the prompt with the agent's own values
    (its name, the date) and without any call's (a line that needs one is left out), so the
    caller's own details never count as the prompt and the agent's instructions always do."""
    return system_prompt(agent, None)


def system_prompt(agent: AgentConfig, context: CallContext | None) -> str:
    """The agent's prompt for this call, rendered now (string work only: no request)."""
    return render(agent.system_prompt, context, agent_name=agent.name, timezone=agent.context.timezone, now=now_utc())
