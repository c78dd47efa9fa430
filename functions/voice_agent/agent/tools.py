"""The fork's own tools. Add a typed function with ``@tool``, list it in ``TOOLS`` and in an
agent's ``tools`` (its ``agent.toml`` in ``voice_agent/agents/``), and that agent's model can call it.

``lookup_order`` is the example: it reads the fork's own data (a JSON file shipped with the code).
A real fork would query its order system here; keep it fast (the caller is waiting, and
``AgentConfig.tool_timeout_s`` bounds it) and return only what the agent may say.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from voice_agent.core.tools import Tool, tool

_ORDERS_FILE = Path(__file__).parent / "data" / "orders.json"


@lru_cache(maxsize=1)
def _orders() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(_ORDERS_FILE.read_text(encoding="utf-8"))
    return data


@tool
def lookup_order(
    order_id: Annotated[str, "The order number the caller gave, digits only"],
) -> dict[str, str]:
    """Look up the status of a customer's order by its order number."""
    key = re.sub(r"\D", "", order_id)
    order = _orders().get(key)
    if order is None:
        return {"found": "no", "order_id": key}
    return {"found": "yes", "order_id": key, **order}


TOOLS: tuple[Tool, ...] = (lookup_order,)
