"""Which language model answers a turn: a provider, a model id, and the fallbacks behind it.

The agent configuration names them (``AgentConfig.llm_provider``, ``llm_model``, ``llm_fallbacks``);
``LLM_PROVIDER`` and ``LLM_MODEL`` override the first one from the environment. The runtime
(``wiring.py``) and the CDK stack (IAM, secrets) both call :func:`resolve_chain`, so the stack
grants exactly the models the runtime will call. Nothing here may import boto3 or anything heavy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

Provider = Literal["openai", "bedrock"]
PROVIDERS: Final[tuple[Provider, ...]] = get_args(Provider)

# What each provider runs when it is chosen without a model id (LLM_PROVIDER alone). Bedrock's is
# the template's default model; README "Choosing the model" says why.
DEFAULT_MODELS: Final[Mapping[Provider, str]] = {
    "bedrock": "us.amazon.nova-lite-v1:0",
    "openai": "gpt-4.1-mini",
}

# Bedrock model ids: a foundation model (``amazon.nova-lite-v1:0``), a cross-Region inference
# profile (``us.amazon.nova-lite-v1:0``, ``global.anthropic...``), or the ARN of either.
BEDROCK_PROFILE_PREFIXES: Final = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")
_FOUNDATION_MODEL = r"[a-z][a-z0-9]*\.[A-Za-z0-9][A-Za-z0-9._:-]*"  # provider.model
BEDROCK_MODEL_ID: Final = re.compile(rf"^(?:(?P<profile>{'|'.join(BEDROCK_PROFILE_PREFIXES)})\.)?{_FOUNDATION_MODEL}$")
BEDROCK_MODEL_ARN: Final = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):bedrock:(?P<region>[a-z0-9-]*):(?P<account>\d{12})?:"
    rf"(?P<kind>foundation-model|inference-profile)/(?P<id>(?:[a-z-]+\.)?{_FOUNDATION_MODEL})$"
)
# OpenAI (or OpenAI-compatible) model names: anything printable without spaces.
OPENAI_MODEL: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")


@dataclass(frozen=True, slots=True)
class ModelRef:
    """One model: who serves it and its id there."""

    provider: Provider
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def resolve_chain(
    primary: ModelRef,
    fallbacks: Sequence[ModelRef] = (),
    *,
    provider: str | None = None,
    model: str | None = None,
) -> tuple[ModelRef, ...]:
    """The models a turn tries, in order.

    ``provider`` / ``model`` (``LLM_PROVIDER`` / ``LLM_MODEL``) replace the first model: a provider
    alone switches to that provider's default model (a Bedrock id means nothing to OpenAI), a model
    alone keeps the configured provider. The fallbacks follow it, without repeats.
    """
    chosen = primary
    if provider is not None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown model provider {provider!r}; use one of {', '.join(PROVIDERS)}")
        wanted = provider
        if wanted != primary.provider:
            chosen = ModelRef(wanted, DEFAULT_MODELS[wanted])
    if model is not None:
        chosen = ModelRef(chosen.provider, model)
    chain: list[ModelRef] = [chosen]
    for fallback in fallbacks:
        if fallback not in chain:
            chain.append(fallback)
    return tuple(chain)


def model_problems(ref: ModelRef) -> list[str]:
    """What is wrong with one model reference (empty if nothing)."""
    if ref.provider not in PROVIDERS:
        return [f"{ref}: provider must be one of {', '.join(PROVIDERS)}"]
    if ref.provider == "bedrock" and not (BEDROCK_MODEL_ID.match(ref.model) or BEDROCK_MODEL_ARN.match(ref.model)):
        return [
            f"{ref}: not a Bedrock model id, inference profile id or ARN "
            "(e.g. amazon.nova-lite-v1:0 or us.amazon.nova-lite-v1:0)"
        ]
    if ref.provider == "openai" and not OPENAI_MODEL.match(ref.model):
        return [f"{ref}: not a model name"]
    return []


def providers(chain: Sequence[ModelRef]) -> frozenset[Provider]:
    return frozenset(m.provider for m in chain)
