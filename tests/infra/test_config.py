"""Stack options: parsed from CDK context, validated before anything is synthesized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import cdk_json_context
from infra.config import OPTIONS, ConfigError, StackConfig
from tests.infra.conftest import OPTIONS_CONTEXT


def test_cdk_json_lists_every_option_with_the_documented_default() -> None:
    context = cdk_json_context()
    assert {k for k in context if not k.startswith("@")} == set(OPTIONS)
    assert StackConfig.from_context(context) == StackConfig()
    assert StackConfig().to_context() == {k: v for k, v in context.items() if k in OPTIONS}


def test_cdk_json_carries_cdks_recommended_feature_flags() -> None:
    flags = {k: v for k, v in cdk_json_context().items() if k.startswith("@aws-cdk")}
    assert flags["@aws-cdk/core:checkSecretUsage"] is True
    assert flags["@aws-cdk/aws-iam:minimizePolicies"] is True


def test_command_line_strings_are_parsed() -> None:
    config = StackConfig.from_context(OPTIONS_CONTEXT)
    assert config.log_retention_days == 30
    assert config.retain_table is False
    assert config.table_deletion_protection is True
    assert config.reserved_concurrency == 20
    assert config.message_function_provisioned_concurrency == 2
    assert config.relay_base_path == "relay"
    assert StackConfig.from_context({"alarmEmail": "", "reservedConcurrency": "null"}) == StackConfig()


def test_cdk_internal_context_is_ignored() -> None:
    context: dict[str, Any] = {
        "aws:cdk:bundling-stacks": [],
        "@aws-cdk/core:newStyleStackSynthesis": True,
        "availability-zones:account=1:region=x": ["a"],
    }
    assert StackConfig.from_context(context) == StackConfig()


def test_a_misspelt_option_fails_instead_of_deploying_the_default() -> None:
    with pytest.raises(ConfigError, match="alarmEmial"):
        StackConfig.from_context({"alarmEmial": "me@example.com"})


@pytest.mark.parametrize(
    ("context", "complaint"),
    [
        ({"logRetentionDays": "10"}, "logRetentionDays"),
        ({"logRetentionDays": "fourteen"}, "logRetentionDays"),
        ({"retainTable": "maybe"}, "retainTable"),
        ({"stageName": "has space"}, "stageName"),
        ({"alarmEmail": "not-an-address"}, "alarmEmail"),
        ({"reservedConcurrency": "0"}, "reservedConcurrency"),
        ({"messageFunctionSnapStart": "true", "messageFunctionProvisionedConcurrency": "1"}, "cannot both be on"),
        ({"reservedConcurrency": "1", "messageFunctionProvisionedConcurrency": "2"}, "cannot exceed"),
        ({"relayDomainName": "relay.example.com"}, "certificateArn"),
        ({"relayBasePath": "relay"}, "needs relayDomainName"),
        ({"relayDomainName": "Relay.Example.com", "certificateArn": OPTIONS_CONTEXT["certificateArn"]}, "lower-case"),
        ({"certificateArn": OPTIONS_CONTEXT["certificateArn"]}, "neither"),
        ({"openaiBaseUrl": "llm.example.com"}, "openaiBaseUrl"),
        ({"metricsNamespace": "AWS/Lambda"}, "metricsNamespace"),
        ({"relayRateLimit": "0"}, "relayRateLimit"),
        ({"llmProvider": "azure"}, "llmProvider"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(context: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        StackConfig.from_context(context)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as excinfo:
        StackConfig(stage_name="", log_retention_days=2)
    assert "stageName" in str(excinfo.value)
    assert "logRetentionDays" in str(excinfo.value)


@pytest.mark.parametrize(
    ("context", "complaint"),
    [
        ({"llmModel": "gpt-4.1-mini"}, "not a Bedrock model id"),  # the default provider is Bedrock
        ({"openaiBaseUrl": "https://llm.example.com/v1"}, "no model of the chain is an OpenAI one"),
    ],
)
def test_a_model_the_runtime_could_not_call_fails_the_synthesis(
    context: dict[str, Any], complaint: str, tmp_path: Path
) -> None:
    from app import build_app

    with pytest.raises(ConfigError, match=complaint):
        build_app({"aws:cdk:bundling-stacks": [], **context}, outdir=str(tmp_path))


def test_an_invalid_agents_folder_fails_the_synthesis_listing_every_problem(tmp_path: Path) -> None:
    from app import build_app

    agents = tmp_path / "agents"
    for name, toml in {"one": 'voice = ""\ncolour = "blue"\n', "two": 'transfer_target = "nobody"\n'}.items():
        (agents / name).mkdir(parents=True)
        (agents / name / "agent.toml").write_text(toml, encoding="utf-8")
        (agents / name / "prompt.md").write_text("You are {{nobody}}.", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        build_app({"aws:cdk:bundling-stacks": []}, outdir=str(tmp_path / "out"), agents_dir=agents)
    message = str(raised.value)
    for expected in (
        "one: voice is empty",
        "one: colour: no such setting",
        "one: prompt: unknown placeholder {{nobody}}",
        "two: transfer_target must be",
        "exactly one agent needs [route] default = true (found 0)",
    ):
        assert expected in message, expected


def test_the_stack_may_call_every_agents_model(tmp_path: Path) -> None:
    from app import build_app
    from infra.stack import VoiceAgentStack

    agents = tmp_path / "agents"
    for name, extra in {
        "main": "[route]\ndefault = true\n",
        "other": 'llm_model = "us.amazon.nova-micro-v1:0"\n',
    }.items():
        (agents / name).mkdir(parents=True)
        (agents / name / "agent.toml").write_text(extra, encoding="utf-8")
        (agents / name / "prompt.md").write_text("You are a test agent.", encoding="utf-8")
    app = build_app({"aws:cdk:bundling-stacks": []}, outdir=str(tmp_path / "out"), agents_dir=agents)
    stack = next(c for c in app.node.children if isinstance(c, VoiceAgentStack))
    assert [m.model for m in stack.model_chain] == ["us.amazon.nova-lite-v1:0", "us.amazon.nova-micro-v1:0"]
