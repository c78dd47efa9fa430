"""Schema of what an agent does around the call: the call context it renders into its prompt, the
start-of-call hook it runs, and what the person who takes a transfer learns (``docs/agents.md``).

Fields of ``AgentConfig`` (``context``, ``handoff``); an agent's ``agent.toml`` sets them in its
``[context]`` and ``[handoff]`` tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ZONE = re.compile(r"^(UTC|[A-Za-z]+(/[A-Za-z0-9_+\-]+){1,2})$")
_HOOK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_WHISPER_FIELDS = ("{agent}", "{reason}", "{summary}")


@dataclass(frozen=True, slots=True)
class ContextPolicy:
    # The business's time zone (IANA name): the prompt's {{today}} and {{time}} are local to it.
    timezone: str = "UTC"
    # The start-of-call hook (a name in agent/hooks.py HOOKS), run once per call while the greeting
    # plays; None: no hook. Its result joins the call context (the prompt's {{hook.NAME}}, tools'
    # ctx.call.hook) when it is back within start_hook_timeout_s; later or failing, the call goes on
    # without it.
    start_hook: str | None = None
    start_hook_timeout_s: float = 3.0


@dataclass(frozen=True, slots=True)
class HandoffPolicy:
    # A number: the person who answers hears this before the call is bridged (<Number url>), the
    # caller hears the hold music meanwhile. {agent}, {reason} and {summary} are filled in.
    whisper: bool = True
    whisper_line: str = "Transfer from {agent}. Reason: {reason}. {summary}"
    # A SIP target: the reason and summary travel as X-Handoff-Reason / X-Handoff-Summary headers.
    sip_headers: bool = True


def around_call_problems(context: ContextPolicy, handoff: HandoffPolicy, hooks: frozenset[str] | None) -> list[str]:
    p: list[str] = []
    if not _ZONE.match(context.timezone):
        p.append(f"context.timezone {context.timezone!r} is not an IANA time zone like Europe/Paris")
    if context.start_hook is not None:
        if not _HOOK_NAME.match(context.start_hook):
            p.append(f"context.start_hook {context.start_hook!r} must be a lower-case function name")
        elif hooks is not None and context.start_hook not in hooks:
            p.append(f"context.start_hook: unknown hook {context.start_hook!r} (agent/hooks.py HOOKS)")
    if not 0.1 <= context.start_hook_timeout_s <= 10:
        p.append("context.start_hook_timeout_s must be 0.1..10")
    if handoff.whisper and not handoff.whisper_line.strip():
        p.append("handoff.whisper_line is empty")
    unknown = set(re.findall(r"\{[^}]*\}", handoff.whisper_line)) - set(_WHISPER_FIELDS)
    if unknown:
        p.append(f"handoff.whisper_line: unknown fields {sorted(unknown)} (use {', '.join(_WHISPER_FIELDS)})")
    return p
