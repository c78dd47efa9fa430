"""A call's custom parameters: the ``<Parameter>``s of the TwiML, which come back in ``setup``.

One rule for both edges: the webhook's query becomes parameters, and a ``setup`` (which any socket
could send) has its parameters bounded the same way before they are stored, since ``/action``
repeats them in every reconnect's TwiML (Twilio refuses a response over 64 KB).

``callToken`` is the project's own: a random per-call value the webhook issues at ``/voice`` and
keeps on the call item; a socket whose ``setup`` names the call without it is refused. It is never
stored among the parameters, logged, or shown to the agent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

CALL_TOKEN_PARAMETER: Final = "callToken"  # noqa: S105 (the parameter's name, not a secret)
MAX_PARAMETERS: Final = 8
MAX_PARAMETER_VALUE: Final = 256
_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
# Set by the webhook itself on every <Connect>: never taken from a query or a setup.
RESERVED: Final = frozenset({CALL_TOKEN_PARAMETER, "reconnectAttempt"})


def bounded_parameters(raw: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """At most ``MAX_PARAMETERS`` well-named parameters, values cut to ``MAX_PARAMETER_VALUE``
    characters, reserved names left out; and how many were left out (for a log line, never the
    values)."""
    kept: dict[str, str] = {}
    for name, value in raw.items():
        if len(kept) < MAX_PARAMETERS and name not in RESERVED and _NAME.match(name):
            kept[name] = value[:MAX_PARAMETER_VALUE]
    return kept, len(set(raw) - RESERVED) - len(kept)
