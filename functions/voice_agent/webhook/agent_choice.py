"""Which agent a webhook request answers as.

``/voice`` routes the call (``core/routing.py``: the ``?agent=`` an outbound call or a number's URL
sets, else the number, else the default agent) and names the agent in the TwiML twice: as the
``agent`` ``<Parameter>`` (so ``setup`` binds the call to the same agent) and in the action URL's
query (so ``/action``, ``/dial-status`` and ``/whisper`` answer as it without a read).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from voice_agent import wiring
from voice_agent.agent.config import AgentConfig
from voice_agent.core.routing import AGENT_PARAMETER, Agents
from voice_agent.webhook.forms import VoiceRequest

if TYPE_CHECKING:
    from voice_agent.webhook.app import Dependencies


def directory(deps: Dependencies) -> Agents:
    if deps.agents is not None:
        return deps.agents()
    if deps.agent is wiring.agent:
        return wiring.agents()
    return Agents.single(deps.agent())  # a test that gave one agent


def answering(deps: Dependencies, call: VoiceRequest) -> tuple[str, AgentConfig]:
    agents = directory(deps)
    name = agents.route(
        to_number=call.to_number, from_number=call.from_number, direction=call.direction, parameters=call.parameters
    )
    return named(deps, name, agents)


def agent_query(name: str) -> str:
    """``agent=NAME`` for an agent ``named`` returned (``""`` for the default one)."""
    return query(name, default=not name)


def named(deps: Dependencies, name: str | None, agents: Agents | None = None) -> tuple[str, AgentConfig]:
    """The agent called ``name`` (the default one for an unknown or missing name); the name is
    ``""`` for the default agent."""
    agents = agents or directory(deps)
    resolved = agents.name_of(name)
    if resolved == agents.default_name:
        return "", deps.agent()
    return resolved, agents.get(resolved)


def query(name: str, default: bool) -> str:
    """The query a webhook URL carries to name the agent: none for the default agent (a one-agent
    stack's URLs stay as they were)."""
    return "" if default else urlencode({AGENT_PARAMETER: name})
