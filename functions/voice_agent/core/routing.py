"""Which agent answers a call: the agents a stack serves, and the rule that picks one.

The rule, in order: the call's ``agent`` parameter (the webhook URL's ``?agent=``: how an outbound
call, or a number configured to, picks its agent explicitly), then the number the call is for (the
called number ``To`` on an inbound call, this stack's number ``From`` on an outbound one), then the
default agent. An unknown name or number reaches the default agent, with a log line that names
neither the number nor (for a name that is not an agent) anything but the fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from voice_agent.agent.config import AgentConfig
from voice_agent.log import logger
from voice_agent.protocol.inbound import Setup

AGENT_PARAMETER: Final = "agent"  # the custom parameter (and webhook query key) that names the agent


@dataclass(frozen=True)
class Agents:
    """Every agent of the stack by name, the numbers each answers, and the default one."""

    by_name: Mapping[str, AgentConfig]
    default_name: str
    numbers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # E.164 -> agent name

    @classmethod
    def single(cls, agent: AgentConfig, name: str = "default") -> Agents:
        return cls(by_name=MappingProxyType({name: agent}), default_name=name)

    @property
    def default(self) -> AgentConfig:
        return self.by_name[self.default_name]

    def get(self, name: str | None) -> AgentConfig:
        """The agent called ``name``; the default one for ``None`` or an unknown name."""
        return self.by_name.get(name or "", self.default)

    def name_of(self, name: str | None) -> str:
        return name if name is not None and name in self.by_name else self.default_name

    def route(self, *, to_number: str, from_number: str, direction: str, parameters: Mapping[str, str]) -> str:
        """The name of the agent that answers this call (see the module's docstring)."""
        explicit = parameters.get(AGENT_PARAMETER)
        if explicit:
            if explicit in self.by_name:
                return explicit
            logger.warning("the call names an agent that does not exist; routing by number")
        ours = from_number if direction.startswith("outbound") else to_number
        name = self.numbers.get(ours.strip())
        if name is not None:
            return name
        if ours and len(self.by_name) > 1:
            logger.info("no agent answers this number; the default agent does", extra={"agent": self.default_name})
        return self.default_name


def routed_setup(agents: Agents, setup: Setup) -> Setup:
    """``setup`` naming the agent that answers in its ``agent`` parameter: the one ``/voice`` chose
    (it puts it in the TwiML), else the one the numbers pick (a socket opened without ``/voice``)."""
    name = agents.route(
        to_number=setup.to_number,
        from_number=setup.from_number,
        direction=setup.direction,
        parameters=setup.custom_parameters,
    )
    if setup.custom_parameters.get(AGENT_PARAMETER) == name:
        return setup
    return replace(setup, custom_parameters={**setup.custom_parameters, AGENT_PARAMETER: name})
