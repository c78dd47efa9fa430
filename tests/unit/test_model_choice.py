"""Which models a turn tries: the agent configuration's chain, the environment's override in
front, and the checks a cold start runs on it."""

from __future__ import annotations

import dataclasses

import pytest

from voice_agent.agent.config import AGENT
from voice_agent.errors import ConfigurationError
from voice_agent.model_choice import DEFAULT_MODELS, ModelRef, model_problems, resolve_chain
from voice_agent.settings import Settings
from voice_agent.wiring import tool_registry

NOVA = ModelRef("bedrock", "us.amazon.nova-lite-v1:0")
MICRO = ModelRef("bedrock", "us.amazon.nova-micro-v1:0")
GPT = ModelRef("openai", "gpt-4.1-mini")


def test_the_default_is_nova_lite_on_bedrock_alone() -> None:
    assert AGENT.llm_chain() == (NOVA,)
    assert DEFAULT_MODELS["bedrock"] == NOVA.model


def test_the_environment_replaces_the_first_model_and_keeps_the_fallbacks() -> None:
    assert resolve_chain(NOVA, (MICRO, GPT), provider="openai") == (GPT, MICRO)  # no repeat
    assert resolve_chain(NOVA, (GPT,), model="anthropic.claude-3-5-haiku-20241022-v1:0") == (
        ModelRef("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0"),
        GPT,
    )
    assert resolve_chain(NOVA, (), provider="openai", model="gpt-test") == (ModelRef("openai", "gpt-test"),)
    assert resolve_chain(NOVA, (), provider="bedrock") == (NOVA,)  # the same provider keeps its model
    with pytest.raises(ValueError, match="unknown model provider"):
        resolve_chain(NOVA, (), provider="azure")


@pytest.mark.parametrize(
    "model",
    [
        "amazon.nova-lite-v1:0",
        "us.amazon.nova-lite-v1:0",
        "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "global.anthropic.claude-haiku-4-5-20251001-v1:0",
        "meta.llama3-1-8b-instruct-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
    ],
)
def test_bedrock_model_and_profile_ids_are_accepted(model: str) -> None:
    assert model_problems(ModelRef("bedrock", model)) == []


@pytest.mark.parametrize("model", ["gpt-4.1-mini", "nova lite", "", "us.", "arn:aws:s3:::bucket/key"])
def test_what_bedrock_cannot_call_is_refused(model: str) -> None:
    assert model_problems(ModelRef("bedrock", model))


def test_a_cold_start_refuses_a_bad_chain_with_every_problem_named() -> None:
    bad = dataclasses.replace(
        AGENT,
        llm_model="gpt-4.1-mini",  # an OpenAI name on Bedrock
        llm_fallbacks=(MICRO, MICRO),
        llm_fallback_after_s=4.0,  # two fallbacks x 4 s leave the last model nothing of the 8 s
    )
    with pytest.raises(ConfigurationError) as raised:
        bad.validate(tool_registry().names)
    message = str(raised.value)
    assert "not a Bedrock model id" in message
    assert "must not repeat a model" in message
    assert "llm_fallback_after_s" in message


def test_a_fallback_chain_that_fits_the_first_token_deadline_is_accepted() -> None:
    good = dataclasses.replace(AGENT, llm_fallbacks=(MICRO, GPT), llm_fallback_after_s=2.5)
    assert good.validate(tool_registry().names).llm_chain() == (NOVA, MICRO, GPT)


def test_llm_provider_is_read_and_checked() -> None:
    base = {"VOICE_AGENT_ENVIRONMENT": "local"}
    assert Settings.from_env(base).llm_provider_override is None
    assert Settings.from_env({**base, "LLM_PROVIDER": " OpenAI "}).llm_provider_override == "openai"
    with pytest.raises(ConfigurationError, match="LLM_PROVIDER"):
        Settings.from_env({**base, "LLM_PROVIDER": "azure"})
