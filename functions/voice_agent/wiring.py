"""Composition root: builds the production objects once per execution environment.

Entry points take their dependencies as parameters with these as defaults, so tests pass fakes
and the local stand-in runs the very same handlers. Imports are inside the factories: ``$connect``
must not pay for the turn engine, and nothing here imports ``openai`` (the adapter does, lazily).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from voice_agent import env_names as names
from voice_agent.log import logger
from voice_agent.settings import load_settings

if TYPE_CHECKING:
    from voice_agent.adapters.dynamo_store import DynamoSessionStore
    from voice_agent.adapters.management_api import ManagementApiSender
    from voice_agent.adapters.openai_chat import OpenAIChatModel
    from voice_agent.agent.config import AgentConfig
    from voice_agent.core.relay import Relay
    from voice_agent.core.tools import ToolRegistry


@lru_cache(maxsize=1)
def tool_registry() -> ToolRegistry:
    from voice_agent.agent.tools import TOOLS
    from voice_agent.core.builtin_tools import BUILTIN_TOOLS
    from voice_agent.core.tools import ToolRegistry

    return ToolRegistry.of([*BUILTIN_TOOLS, *TOOLS])


@lru_cache(maxsize=1)
def agent() -> AgentConfig:
    """The agent configuration, validated once (a bad edit fails the cold start, loudly)."""
    from voice_agent.agent.config import AGENT

    return AGENT.validate(known_tools=tool_registry().names)


@lru_cache(maxsize=1)
def session_store() -> DynamoSessionStore:
    from voice_agent.adapters import aws_clients
    from voice_agent.adapters.dynamo_store import DynamoSessionStore

    return DynamoSessionStore(
        client=aws_clients.dynamodb(),
        table_name=load_settings().table_name,
        retention_days=agent().transcript_retention_days,
    )


@lru_cache(maxsize=1)
def sender() -> ManagementApiSender:
    from voice_agent.adapters import aws_clients
    from voice_agent.adapters.management_api import ManagementApiSender

    settings = load_settings()
    endpoint = settings.require(settings.relay_callback_url, names.RELAY_CALLBACK_URL)
    return ManagementApiSender(aws_clients.management_api(endpoint))


def openai_api_key() -> str | None:
    from voice_agent.adapters.secrets import secret_value

    s = load_settings()
    return secret_value(arn=s.openai_api_key_secret_arn, plain=s.openai_api_key, name="OpenAI API key")


def twilio_auth_token() -> str | None:
    from voice_agent.adapters.secrets import secret_value

    s = load_settings()
    return secret_value(arn=s.twilio_auth_token_secret_arn, plain=s.twilio_auth_token, name="Twilio auth token")


@lru_cache(maxsize=1)
def chat_model() -> OpenAIChatModel:
    from voice_agent.adapters.openai_chat import OpenAIChatModel

    a, s = agent(), load_settings()
    return OpenAIChatModel(
        model=s.llm_model_override or a.llm_model,
        api_key=openai_api_key,
        base_url=s.openai_base_url,
        connect_timeout_s=a.llm_connect_timeout_s,
        read_timeout_s=a.llm_token_gap_timeout_s,
        warm_connection=a.warm_llm_connection,
    )


_warmed = threading.Event()


def warm_model_once() -> None:
    """Import the SDK and open the model connection once per execution environment."""
    if _warmed.is_set():
        return
    _warmed.set()
    chat_model().warm()


@lru_cache(maxsize=1)
def relay() -> Relay:
    from voice_agent.core.relay import Relay
    from voice_agent.core.turn_engine import TurnEngine

    store, out = session_store(), sender()
    engine = TurnEngine(store=store, sender=out, model=chat_model, agent=agent(), tools=tool_registry())
    return Relay(store=store, engine=engine, sender=out, agent=agent(), warm_model=warm_model_once)


def warn_if_unsigned() -> None:
    """Say loudly, once per process, that Twilio signatures are not being checked."""
    if not load_settings().signature_validation and not _unsigned_warned.is_set():
        _unsigned_warned.set()
        logger.warning(
            "TWILIO SIGNATURES ARE NOT CHECKED: anyone who can reach this server can talk to the agent. "
            f"Set {names.TWILIO_AUTH_TOKEN} to check them (local development only)."
        )


_unsigned_warned = threading.Event()


def reset() -> None:
    """Forget everything built (tests that change the environment)."""
    from voice_agent.adapters import aws_clients, secrets

    for factory in (tool_registry, agent, session_store, sender, chat_model, relay):
        factory.cache_clear()
    load_settings.cache_clear()
    aws_clients.reset_clients()
    secrets.clear_cache()
    _warmed.clear()
    _unsigned_warned.clear()
