"""The stack's options: one typed, validated object built from CDK context.

``app.py`` reads the context (``cdk.json``, then ``-c key=value`` on the CDK command line) and hands
it to :meth:`StackConfig.from_context`; constructs only ever see the resulting object. Every option,
its default and its meaning is listed in ``OPTIONS`` below and in ``docs/deploy.md``; ``cdk.json``
repeats the defaults so they are visible where users edit them (a test keeps the two equal).

Nothing here imports CDK, so the parsing is testable in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from voice_agent.model_choice import PROVIDERS

# The values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

_STAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_BASE_PATH = re.compile(r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9._/#:-]{1,255}$")
_OPTION_KEY = re.compile(r"^[a-z][A-Za-z0-9]*$")  # CDK's own context keys carry ':' '@' or '-'


class ConfigError(ValueError):
    """An option in the CDK context has a value the stack cannot use."""


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """What differs between deployments of the stack. Defaults are the documented defaults."""

    stack_name: str = "VoiceAgent"
    stage_name: str = "prod"
    log_retention_days: int = 14
    alarm_email: str | None = None
    # Alarm when the 90th percentile of TimeToFirstPhrase stays above this (two 5-minute periods of three).
    first_phrase_alarm_ms: int = 2500
    metrics_namespace: str = "VoiceAgent"
    # The sessions table.
    retain_table: bool = True
    table_deletion_protection: bool = False
    # How long DynamoDB point-in-time recovery can bring the table back (1..35 days; 0: off). A
    # transcript lives its TTL (the agent's transcript_retention_days), up to two more days until
    # DynamoDB deletes it, and then this long in the recovery window: keep it short.
    point_in_time_recovery_days: int = 7
    # Cost guards: WebSocket route throttling (inbound frames), webhook throttling, and a cap on
    # concurrent message-function executions (None: no reservation, the account pool is shared).
    relay_rate_limit: int = 50
    relay_burst_limit: int = 100
    webhook_rate_limit: int = 10
    webhook_burst_limit: int = 20
    reserved_concurrency: int | None = None
    # Keeping the message function warm (both off by default; they cost money while idle or add
    # SnapStart charges, and they are mutually exclusive).
    message_function_snap_start: bool = False
    message_function_provisioned_concurrency: int = 0
    # WebSocket access logs need the account-wide API Gateway CloudWatch role (see docs/deploy.md).
    relay_access_logs: bool = False
    # The language model: the first model's provider and id override the agent configuration's
    # (None: the agent's); an OpenAI key lives in Secrets Manager, Bedrock needs none.
    openai_base_url: str | None = None
    llm_provider: str | None = None
    llm_model: str | None = None
    # Custom domains (optional; the certificate must be in the stack's region and cover both names).
    relay_domain_name: str | None = None
    relay_base_path: str | None = None
    webhook_domain_name: str | None = None
    certificate_arn: str | None = None

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ConfigError("invalid stack options:\n- " + "\n- ".join(problems))

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> StackConfig:
        """Build from CDK context values: JSON from ``cdk.json`` or strings from ``-c key=value``.

        Keys that look like ours but are not options are refused, so a typo fails loudly instead of
        deploying the default.
        """
        unknown = sorted(k for k in context if _OPTION_KEY.match(k) and k not in OPTIONS)
        if unknown:
            raise ConfigError(f"unknown stack option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}")
        values: dict[str, Any] = {}
        for key, (field_name, parse) in OPTIONS.items():
            if key in context:
                try:
                    values[field_name] = parse(context[key])
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"stack option {key}: {exc}") from exc
        return cls(**values)

    def to_context(self) -> dict[str, Any]:
        """The options as ``cdk.json`` context (what ``from_context`` reads back)."""
        by_field = {field_name: key for key, (field_name, _) in OPTIONS.items()}
        return {by_field[f.name]: getattr(self, f.name) for f in fields(self)}

    @property
    def keeps_message_function_warm(self) -> bool:
        return self.message_function_snap_start or self.message_function_provisioned_concurrency > 0


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value.strip()


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    text = _text(value)
    return None if text.lower() in ("", "null", "none") else text


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    return int(_text(value))


def _optional_integer(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
        return None
    return _integer(value)


Parser = Callable[[Any], Any]

# context key -> (StackConfig field, parser). The keys are the names users type in cdk.json / -c.
OPTIONS: Mapping[str, tuple[str, Parser]] = {
    "stackName": ("stack_name", _text),
    "stageName": ("stage_name", _text),
    "logRetentionDays": ("log_retention_days", _integer),
    "alarmEmail": ("alarm_email", _optional_text),
    "firstPhraseAlarmMs": ("first_phrase_alarm_ms", _integer),
    "metricsNamespace": ("metrics_namespace", _text),
    "retainTable": ("retain_table", _flag),
    "tableDeletionProtection": ("table_deletion_protection", _flag),
    "pointInTimeRecoveryDays": ("point_in_time_recovery_days", _integer),
    "relayRateLimit": ("relay_rate_limit", _integer),
    "relayBurstLimit": ("relay_burst_limit", _integer),
    "webhookRateLimit": ("webhook_rate_limit", _integer),
    "webhookBurstLimit": ("webhook_burst_limit", _integer),
    "reservedConcurrency": ("reserved_concurrency", _optional_integer),
    "messageFunctionSnapStart": ("message_function_snap_start", _flag),
    "messageFunctionProvisionedConcurrency": ("message_function_provisioned_concurrency", _integer),
    "relayAccessLogs": ("relay_access_logs", _flag),
    "openaiBaseUrl": ("openai_base_url", _optional_text),
    "llmProvider": ("llm_provider", _optional_text),
    "llmModel": ("llm_model", _optional_text),
    "relayDomainName": ("relay_domain_name", _optional_text),
    "relayBasePath": ("relay_base_path", _optional_text),
    "webhookDomainName": ("webhook_domain_name", _optional_text),
    "certificateArn": ("certificate_arn", _optional_text),
}


def _problems(c: StackConfig) -> list[str]:
    p: list[str] = []
    if not _STACK_NAME.match(c.stack_name):
        p.append(f"stackName must be letters, digits and hyphens, starting with a letter: {c.stack_name!r}")
    if not _STAGE_NAME.match(c.stage_name):
        p.append(f"stageName must be 1-128 letters, digits, '-' or '_': {c.stage_name!r}")
    if c.log_retention_days not in LOG_RETENTION_DAYS:
        p.append(f"logRetentionDays must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    if c.alarm_email is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", c.alarm_email):
        p.append(f"alarmEmail does not look like an e-mail address: {c.alarm_email!r}")
    if not 0 <= c.point_in_time_recovery_days <= 35:
        p.append("pointInTimeRecoveryDays must be 0 (off) or 1..35")
    if not 100 <= c.first_phrase_alarm_ms <= 25_000:
        p.append("firstPhraseAlarmMs must be between 100 and 25000")
    if not _NAMESPACE.match(c.metrics_namespace) or c.metrics_namespace.startswith("AWS/"):
        p.append(f"metricsNamespace is not a usable CloudWatch namespace: {c.metrics_namespace!r}")
    if c.openai_base_url is not None and not re.match(r"^https?://[^\s/]+", c.openai_base_url):
        p.append(f"openaiBaseUrl must be an http(s) URL: {c.openai_base_url!r}")
    if c.llm_provider is not None and c.llm_provider not in PROVIDERS:
        p.append(f"llmProvider must be one of {', '.join(PROVIDERS)}: {c.llm_provider!r}")
    return p + _capacity_problems(c) + _domain_problems(c)


def _capacity_problems(c: StackConfig) -> list[str]:
    p: list[str] = []
    for name, rate, burst in (
        ("relay", c.relay_rate_limit, c.relay_burst_limit),
        ("webhook", c.webhook_rate_limit, c.webhook_burst_limit),
    ):
        if rate < 1 or burst < 1:
            p.append(f"{name}RateLimit and {name}BurstLimit must be at least 1")
    if c.reserved_concurrency is not None and c.reserved_concurrency < 1:
        p.append("reservedConcurrency must be at least 1 (leave it null for no reservation)")
    provisioned = c.message_function_provisioned_concurrency
    if provisioned < 0:
        p.append("messageFunctionProvisionedConcurrency must be 0 (off) or more")
    if c.message_function_snap_start and provisioned > 0:
        p.append("messageFunctionSnapStart and messageFunctionProvisionedConcurrency cannot both be on")
    if c.reserved_concurrency is not None and provisioned > c.reserved_concurrency:
        p.append("messageFunctionProvisionedConcurrency cannot exceed reservedConcurrency")
    return p


def _domain_problems(c: StackConfig) -> list[str]:
    p: list[str] = []
    for key, domain in (("relayDomainName", c.relay_domain_name), ("webhookDomainName", c.webhook_domain_name)):
        if domain is not None and not _DOMAIN.match(domain):
            p.append(f"{key} must be a lower-case host name such as relay.example.com: {domain!r}")
    if c.relay_base_path is not None:
        if c.relay_domain_name is None:
            p.append("relayBasePath needs relayDomainName (it is the API mapping key on the custom domain)")
        if not _BASE_PATH.match(c.relay_base_path):
            p.append(f"relayBasePath must be a path like 'relay', no leading or trailing '/': {c.relay_base_path!r}")
    uses_domain = c.relay_domain_name is not None or c.webhook_domain_name is not None
    if uses_domain and c.certificate_arn is None:
        p.append("a custom domain needs certificateArn (an ACM certificate in the stack's region)")
    if c.certificate_arn is not None:
        if not uses_domain:
            p.append("certificateArn is set but neither relayDomainName nor webhookDomainName is")
        if not _CERTIFICATE_ARN.match(c.certificate_arn):
            p.append(f"certificateArn is not an ACM certificate ARN: {c.certificate_arn!r}")
    return p
