"""This agent's start-of-call hooks. Write a typed function that takes the call's context and
returns a few named values, list it in ``HOOKS``, and name it in an agent's ``agent.toml``
(``[context] start_hook = "lookup_caller"``): it runs once per call while the greeting plays, and
its values reach the prompt (``{{hook.caller_name}}``) and every tool (``ctx.call.hook``).

``lookup_caller`` is the example: it finds the caller by number in the fork's own data (a JSON file
shipped with the code). A real fork would ask its CRM here. Keep it well inside
``context.start_hook_timeout_s``: a hook that is late or raises is left out and the call goes on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from voice_agent.core.call_context import CallContext
from voice_agent.core.start_hook import StartHook

_CUSTOMERS_FILE = Path(__file__).parent / "data" / "customers.json"


@lru_cache(maxsize=1)
def _customers() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(_CUSTOMERS_FILE.read_text(encoding="utf-8"))
    return data


def lookup_caller(call: CallContext) -> Mapping[str, str] | None:
    """The caller's name and loyalty tier, if their number is a known customer's."""
    customer = _customers().get(call.customer_number)
    if customer is None:
        return None
    return {"caller_name": customer["name"], "tier": customer["tier"]}


HOOKS: Mapping[str, StartHook] = {"lookup_caller": lookup_caller}
