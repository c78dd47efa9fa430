"""The infra tier: the CDK app synthesized in-process (node via jsii), cdk-nag, cfn-lint.

No AWS, no Docker, no CDK CLI. Starting jsii dominates the cost, so each variant of the stack is
synthesized once per session; bundling is skipped except in test_bundle.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from app import build_app
from infra.stack import VoiceAgentStack
from voice_agent.agent.config import AGENT, AgentConfig, CallRecordPolicy
from voice_agent.model_choice import ModelRef

SKIP_BUNDLING: Mapping[str, Any] = {"aws:cdk:bundling-stacks": []}

# Every option switched away from its default, given as strings the way `-c key=value` gives them.
OPTIONS_CONTEXT: Mapping[str, Any] = {
    "stackName": "VoiceAgentDev",
    "stageName": "live",
    "logRetentionDays": "30",
    "alarmEmail": "oncall@example.com",
    "firstPhraseAlarmMs": "1800",
    "metricsNamespace": "VoiceAgentDev",
    "retainTable": "false",
    "tableDeletionProtection": "true",
    "relayRateLimit": "20",
    "relayBurstLimit": "40",
    "webhookRateLimit": "5",
    "webhookBurstLimit": "10",
    "reservedConcurrency": "20",
    "messageFunctionProvisionedConcurrency": "2",
    "relayAccessLogs": "true",
    "openaiBaseUrl": "https://llm.example.com/v1",
    "llmProvider": "openai",
    "llmModel": "gpt-test",
    "relayDomainName": "relay.example.com",
    "relayBasePath": "relay",
    "webhookDomainName": "voice.example.com",
    "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555",
    "pointInTimeRecoveryDays": "0",
}


@dataclass(frozen=True)
class Synthesized:
    """One synthesized app: the stack object (for logical ids) and its template."""

    stack: VoiceAgentStack
    template: dict[str, Any]
    outdir: Path

    @property
    def assertions(self) -> Template:
        return Template.from_json(self.template)

    def logical_id(self, construct: Any) -> str:
        """The logical id of a construct's CloudFormation resource (or of the resource itself)."""
        resource = getattr(construct.node, "default_child", None) or construct
        return str(self.stack.resolve(self.stack.get_logical_id(resource)))


def synthesize(outdir: Path, context: Mapping[str, Any], agent: AgentConfig | None = None) -> Synthesized:
    """What `python app.py` does, with extra context. cdk-nag runs: an unacknowledged finding
    makes ``synth`` raise, so every fixture built here has already passed AwsSolutions."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("CDK_CONTEXT_JSON", raising=False)  # a developer's shell must not leak in
        env.delenv("CDK_OUTDIR", raising=False)
        app = build_app(dict(context), outdir=str(outdir), agent=agent)
        assembly = app.synth()
    stacks = [c for c in app.node.children if isinstance(c, VoiceAgentStack)]
    assert len(stacks) == 1
    template = assembly.get_stack_by_name(stacks[0].stack_name).template
    return Synthesized(stack=stacks[0], template=template, outdir=outdir)


@pytest.fixture(scope="session")
def default(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The stack as cdk.json configures it."""
    return synthesize(tmp_path_factory.mktemp("default"), SKIP_BUNDLING)


@pytest.fixture(scope="session")
def options(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Every option changed: custom domains, alarm e-mail, provisioned concurrency, ..."""
    return synthesize(tmp_path_factory.mktemp("options"), {**SKIP_BUNDLING, **OPTIONS_CONTEXT})


@pytest.fixture(scope="session")
def snap_start(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("snapstart"), {**SKIP_BUNDLING, "messageFunctionSnapStart": "true"})


# A chain across providers: Bedrock through a US inference profile, then a foundation model in
# the stack's Region, then OpenAI.
FALLBACK_AGENT = dataclasses.replace(
    AGENT,
    llm_fallbacks=(
        ModelRef("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0"),
        ModelRef("openai", "gpt-4.1-mini"),
    ),
)


# An agent whose records carry a summary and fields written by the model after the call.
SUMMARIZING_AGENT = dataclasses.replace(
    AGENT,
    call_record=CallRecordPolicy(
        summary=True, fields_schema={"type": "object", "properties": {"order_id": {"type": "string"}}}
    ),
)


@pytest.fixture(scope="session")
def summarizing(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("summarizing"), SKIP_BUNDLING, agent=SUMMARIZING_AGENT)


@pytest.fixture(scope="session")
def fallbacks(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("fallbacks"), SKIP_BUNDLING, agent=FALLBACK_AGENT)
