"""Deployment settings: one typed object, read from the environment once per cold start.

Behaviour a fork edits (prompt, voice, tools) lives in ``voice_agent.agent``; this module only holds
what differs between deployments (table, URLs, where secrets live) and is set by the CDK stack or by
the local stack. Variable names come from ``env_names``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from voice_agent import env_names as names
from voice_agent.errors import ConfigurationError
from voice_agent.model_choice import PROVIDERS, Provider

Environment = Literal["aws", "local"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Settings:
    environment: Environment
    table_name: str
    dynamodb_endpoint_url: str | None
    relay_public_url: str | None
    relay_callback_url: str | None
    webhook_public_url: str | None
    twilio_auth_token_secret_arn: str | None
    twilio_auth_token: str | None
    openai_api_key_secret_arn: str | None
    openai_api_key: str | None
    openai_base_url: str | None
    llm_provider_override: Provider | None
    llm_model_override: str | None
    signature_validation: bool
    log_sensitive_data: bool
    timer_queue_url: str | None = None
    record_queue_url: str | None = None
    call_records_bucket: str | None = None
    call_events_bus: str | None = None
    call_records_dir: str | None = None  # local only
    agents_dir: str | None = None  # None: the agents folder shipped in the package

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        in_lambda = bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
        environment = _environment(env, in_lambda=in_lambda)
        relay_public_url = _url(env, names.RELAY_PUBLIC_URL, environment, secure="wss", insecure="ws")
        webhook_public_url = _url(env, names.WEBHOOK_PUBLIC_URL, environment, secure="https", insecure="http")
        relay_callback_url = _url(env, names.RELAY_CALLBACK_URL, environment, secure="https", insecure="http")
        twilio_token = _opt(env, names.TWILIO_AUTH_TOKEN)
        twilio_secret = _opt(env, names.TWILIO_AUTH_TOKEN_SECRET_ARN)
        validation = _signature_validation(env, environment, in_lambda=in_lambda, token=twilio_token)
        return cls(
            environment=environment,
            table_name=env.get(names.SESSIONS_TABLE_NAME, "voice-agent-sessions"),
            dynamodb_endpoint_url=_opt(env, names.DYNAMODB_ENDPOINT_URL),
            relay_public_url=relay_public_url,
            relay_callback_url=relay_callback_url,
            webhook_public_url=webhook_public_url,
            twilio_auth_token_secret_arn=twilio_secret,
            twilio_auth_token=twilio_token,
            openai_api_key_secret_arn=_opt(env, names.OPENAI_API_KEY_SECRET_ARN),
            openai_api_key=_opt(env, names.OPENAI_API_KEY),
            openai_base_url=_opt(env, names.OPENAI_BASE_URL),
            llm_provider_override=_provider(env),
            llm_model_override=_opt(env, names.LLM_MODEL),
            signature_validation=validation,
            log_sensitive_data=_flag(env, names.LOG_SENSITIVE_DATA, default=False) is True,
            timer_queue_url=_opt(env, names.TIMER_QUEUE_URL),
            record_queue_url=_opt(env, names.RECORD_QUEUE_URL),
            call_records_bucket=_opt(env, names.CALL_RECORDS_BUCKET),
            call_events_bus=_opt(env, names.CALL_EVENTS_BUS),
            call_records_dir=_records_dir(env, environment),
            agents_dir=_opt(env, names.AGENTS_DIR),
        )

    def require(self, value: str | None, name: str) -> str:
        """Return a setting a code path cannot run without, or fail with the variable's name."""
        if not value:
            raise ConfigurationError(f"{name} is not set; the stack (or `make dev`) must set it")
        return value


def _environment(env: Mapping[str, str], *, in_lambda: bool) -> Environment:
    raw = env.get(names.RUNTIME_ENVIRONMENT, "aws" if in_lambda else "local").strip().lower()
    if raw not in ("aws", "local"):
        raise ConfigurationError(f"{names.RUNTIME_ENVIRONMENT} must be 'aws' or 'local', not {raw!r}")
    if in_lambda and raw == "local":
        raise ConfigurationError(f"{names.RUNTIME_ENVIRONMENT}=local is refused inside AWS Lambda")
    return "aws" if raw == "aws" else "local"


def _signature_validation(
    env: Mapping[str, str], environment: Environment, *, in_lambda: bool, token: str | None
) -> bool:
    requested = _flag(env, names.TWILIO_SIGNATURE_VALIDATION, default=None)
    if environment == "aws" or in_lambda:
        if requested is False:
            raise ConfigurationError(
                f"{names.TWILIO_SIGNATURE_VALIDATION}=off is only honoured locally; a deployed stack "
                "always checks Twilio signatures"
            )
        return True
    if requested is not None:
        return requested
    # Locally, a token means "check"; no token means "cannot check" (warned loudly at start-up).
    return token is not None


def _url(env: Mapping[str, str], name: str, environment: Environment, *, secure: str, insecure: str) -> str | None:
    raw = _opt(env, name)
    if raw is None:
        return None
    parts = urlsplit(raw)
    allowed = {secure} if environment == "aws" else {secure, insecure}
    if parts.scheme not in allowed or not parts.netloc:
        raise ConfigurationError(f"{name} must be a {' or '.join(sorted(allowed))} URL, got {raw!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name} must not carry a query string or fragment: {raw!r}")
    return raw.rstrip("/")


def _records_dir(env: Mapping[str, str], environment: Environment) -> str | None:
    directory = _opt(env, names.LOCAL_CALL_RECORDS_DIR)
    if directory is not None and environment == "aws":
        raise ConfigurationError(f"{names.LOCAL_CALL_RECORDS_DIR} is local only; a deployed stack writes to S3")
    return directory


def _provider(env: Mapping[str, str]) -> Provider | None:
    raw = (_opt(env, names.LLM_PROVIDER) or "").lower()
    if not raw:
        return None
    if raw not in PROVIDERS:
        raise ConfigurationError(f"{names.LLM_PROVIDER} must be one of {', '.join(PROVIDERS)}, not {raw!r}")
    return raw


def _opt(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _flag(env: Mapping[str, str], name: str, *, default: bool | None) -> bool | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true/false (or on/off), got {raw!r}")


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """The process's settings, validated once per cold start."""
    return Settings.from_env()
