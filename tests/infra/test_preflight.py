"""`make preflight` finds each problem it claims to find, offline: every AWS answer comes from
botocore's Stubber (the real clients, validating every request against the service model)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

from infra.cli import preflight
from infra.config import ConfigError, StackConfig
from tests.infra.conftest import Synthesized
from voice_agent.agent.config import AGENT, AgentConfig
from voice_agent.model_choice import ModelRef

TODAY = date(2026, 12, 2)
REGION = "eu-west-1"
ARN = "arn:aws:sts::123456789012:assumed-role/Admin/me"


class StubbedAws:
    """One real boto3 client per service, each behind a Stubber that answers what a test queued."""

    def __init__(self, region: str | None = REGION) -> None:
        self.region = region
        self.clients: dict[str, Any] = {}
        self.stubs: dict[str, Stubber] = {}

    def stub(self, service: str) -> Stubber:
        if service not in self.stubs:
            factory: Any = boto3.client  # any service by name
            self.clients[service] = factory(service, region_name=self.region or "us-east-1")
            self.stubs[service] = Stubber(self.clients[service])
            self.stubs[service].activate()
        return self.stubs[service]

    def client(self, service: str) -> Any:
        self.stub(service)
        return self.clients[service]

    def done(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()
            stub.deactivate()


@pytest.fixture
def aws() -> Iterator[StubbedAws]:
    stubbed = StubbedAws()
    yield stubbed
    stubbed.done()


def one(found: preflight.Findings, check: str) -> preflight.Finding:
    (finding,) = (f for f in found.items if f.check == check)
    return finding


def identity(aws: StubbedAws) -> None:
    aws.stub("sts").add_response("get_caller_identity", {"Account": "123456789012", "Arn": ARN, "UserId": "AIDA"})


def bootstrapped(aws: StubbedAws, version: str = "29", status: str = "UPDATE_COMPLETE") -> None:
    aws.stub("ssm").add_response(
        "get_parameter",
        {"Parameter": {"Name": "/cdk-bootstrap/hnb659fds/version", "Value": version, "Type": "String"}},
        {"Name": "/cdk-bootstrap/hnb659fds/version"},
    )
    stack = {"StackName": "CDKToolkit", "StackStatus": status, "CreationTime": "2026-01-01T00:00:00Z"}
    aws.stub("cloudformation").add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "CDKToolkit"})


def account_settings(aws: StubbedAws, quota: int, unreserved: int) -> None:
    limits = {"ConcurrentExecutions": quota, "UnreservedConcurrentExecutions": unreserved}
    aws.stub("lambda").add_response("get_account_settings", {"AccountLimit": limits})


# -- Node.js ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "today", "level", "says"),
    [
        ("v24.11.1", TODAY, "ok", "supported by the CDK until 2028-10-30"),
        ("v22.21.0", TODAY, "ok", "until 2027-10-30"),
        ("v20.20.2", TODAY, "fail", "the CDK's support for Node.js 20 ended on 2026-10-30; install Node.js 24"),
        ("v20.20.2", date(2026, 5, 1), "warn", "reached its end of life on 2026-04-30, CDK support ends 2026-10-30"),
        ("v16.20.0", TODAY, "fail", "ended"),
        ("v25.1.0", TODAY, "warn", "not an LTS release"),
        ("v26.0.0", TODAY, "warn", "newer than this check knows"),
        (None, TODAY, "fail", "`node` not found on the PATH: install Node.js 24"),
        ("banana", TODAY, "fail", "cannot read the version"),
    ],
)
def test_node_versions_are_held_to_the_cdks_support_table(
    version: str | None, today: date, level: str, says: str
) -> None:
    found = preflight.Findings()
    preflight.check_node(found, version, today)
    (finding,) = found.items
    assert (finding.level, finding.check) == (level, "Node.js")
    assert says in finding.text


def test_node_without_npm_cannot_install_the_cdk_cli() -> None:
    found = preflight.Findings()
    preflight.check_node(found, "v24.11.1", TODAY, npm=False)
    assert found.items[0].level == "fail"
    assert "without npm" in found.items[0].text


def test_the_node_table_is_the_cdks_lts_policy() -> None:
    # Even majors (LTS), supported until six months after their end of life.
    for major, (eol, ends) in preflight.NODE_SUPPORT.items():
        assert major % 2 == 0
        assert (ends.year * 12 + ends.month) - (eol.year * 12 + eol.month) == 6
    assert preflight.NODE_SUPPORT[preflight.RECOMMENDED_NODE] == max(preflight.NODE_SUPPORT.values())


# -- credentials and region ------------------------------------------------------------------------


def test_credentials_found_name_the_account_and_region(aws: StubbedAws) -> None:
    identity(aws)
    found = preflight.Findings()
    assert preflight.check_credentials(found, aws) == "123456789012"
    assert one(found, "AWS credentials").text == f"account 123456789012 in {REGION} as {ARN}"


def test_no_region_no_credentials_and_expired_credentials_each_say_the_fix(aws: StubbedAws) -> None:
    found = preflight.Findings()
    assert preflight.check_credentials(found, StubbedAws(region=None)) is None
    assert "export AWS_REGION" in found.items[-1].text

    class NoCredentials:
        region: str | None = REGION

        def client(self, service: str) -> Any:
            class Sts:
                def get_caller_identity(self) -> None:
                    raise NoCredentialsError

            return Sts()

    assert preflight.check_credentials(found, NoCredentials()) is None
    assert "aws configure sso" in found.items[-1].text

    aws.stub("sts").add_client_error("get_caller_identity", "ExpiredToken", http_status_code=403)
    assert preflight.check_credentials(found, aws) is None
    assert found.items[-1].text == "refused (ExpiredToken): `aws sso login` (or new access keys)"
    assert [f.level for f in found.items] == ["fail", "fail", "fail"]


# -- the CDK bootstrap -----------------------------------------------------------------------------


def test_a_bootstrapped_region_passes(aws: StubbedAws) -> None:
    bootstrapped(aws)
    found = preflight.Findings()
    preflight.check_bootstrap(found, aws, "hnb659fds")
    assert one(found, "CDK bootstrap").level == "ok"


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("missing", "eu-west-1 is not bootstrapped (no /cdk-bootstrap/hnb659fds/version): run `make bootstrap`"),
        ("old", "version 5 in eu-west-1, the stack needs 6 or later: run `make bootstrap`"),
        ("broken", "the CDKToolkit stack is UPDATE_ROLLBACK_FAILED: delete it"),
    ],
)
def test_a_missing_old_or_broken_bootstrap_fails(aws: StubbedAws, setup: str, says: str) -> None:
    if setup == "missing":
        aws.stub("ssm").add_client_error("get_parameter", "ParameterNotFound", http_status_code=400)
    elif setup == "old":
        aws.stub("ssm").add_response("get_parameter", {"Parameter": {"Name": "n", "Value": "5", "Type": "String"}})
    else:
        bootstrapped(aws, status="UPDATE_ROLLBACK_FAILED")
    found = preflight.Findings()
    preflight.check_bootstrap(found, aws, "hnb659fds")
    finding = one(found, "CDK bootstrap")
    assert finding.level == "fail"
    assert says in finding.text


def test_a_custom_qualifier_is_read_from_the_context(aws: StubbedAws) -> None:
    aws.stub("ssm").add_response(
        "get_parameter",
        {"Parameter": {"Name": "n", "Value": "29", "Type": "String"}},
        {"Name": "/cdk-bootstrap/myqual/version"},
    )
    aws.stub("cloudformation").add_client_error("describe_stacks", "ValidationError", http_status_code=400)
    found = preflight.Findings()
    preflight.check_bootstrap(found, aws, "myqual")
    assert one(found, "CDK bootstrap").level == "ok"


def test_the_bootstrap_version_required_is_the_stacks(default: Synthesized) -> None:
    manifest = json.loads((default.outdir / "manifest.json").read_text(encoding="utf-8"))
    required = {
        a["properties"]["requiresBootstrapStackVersion"]
        for a in manifest["artifacts"].values()
        if "requiresBootstrapStackVersion" in a.get("properties", {})
    }
    assert required == {preflight.MIN_BOOTSTRAP_VERSION}


# -- Lambda concurrency ----------------------------------------------------------------------------


def concurrency(aws: StubbedAws, context: Mapping[str, Any]) -> preflight.Finding:
    found = preflight.Findings()
    preflight.check_concurrency(found, aws, StackConfig.from_context(context))
    return one(found, "Lambda concurrency")


def not_deployed(aws: StubbedAws) -> None:
    aws.stub("cloudformation").add_client_error("list_stack_resources", "ValidationError", http_status_code=400)


def test_the_default_stack_reserves_nothing_but_a_tiny_quota_is_a_warning(aws: StubbedAws) -> None:
    account_settings(aws, 1000, 1000)
    assert concurrency(aws, {}).level == "ok"
    account_settings(aws, 10, 10)
    finding = concurrency(aws, {})
    assert finding.level == "warn"
    assert "quota in eu-west-1 is 10" in finding.text
    assert "Service Quotas > AWS Lambda > Concurrent executions" in finding.text


def test_a_reservation_a_new_account_cannot_make_fails(aws: StubbedAws) -> None:
    account_settings(aws, 10, 10)
    not_deployed(aws)
    finding = concurrency(aws, {"reservedConcurrency": "5"})
    assert finding.level == "fail"
    assert "asks for reservedConcurrency=5 but the account can set aside at most 0" in finding.text
    assert "(quota 10, 10 unreserved, Lambda keeps 10)" in finding.text


def test_provisioned_concurrency_needs_room_above_the_unreserved_minimum(aws: StubbedAws) -> None:
    account_settings(aws, 102, 102)
    not_deployed(aws)
    finding = concurrency(aws, {"messageFunctionProvisionedConcurrency": "3"})
    assert finding.level == "fail"
    assert "messageFunctionProvisionedConcurrency=3" in finding.text
    account_settings(aws, 1000, 1000)
    not_deployed(aws)
    assert concurrency(aws, {"messageFunctionProvisionedConcurrency": "3"}).level == "ok"


def test_a_redeploy_counts_what_the_stack_already_reserves(aws: StubbedAws) -> None:
    def deployed_with(reserved: int) -> None:
        resources = [
            {
                "LogicalResourceId": "MessageFunction",
                "PhysicalResourceId": "VoiceAgent-Message",
                "ResourceType": "AWS::Lambda::Function",
                "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
                "ResourceStatus": "UPDATE_COMPLETE",
            },
            {
                "LogicalResourceId": "Table",
                "PhysicalResourceId": "t",
                "ResourceType": "AWS::DynamoDB::Table",
                "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
                "ResourceStatus": "CREATE_COMPLETE",
            },
        ]
        aws.stub("cloudformation").add_response(
            "list_stack_resources", {"StackResourceSummaries": resources}, {"StackName": "VoiceAgent"}
        )
        aws.stub("lambda").add_response(
            "get_function_concurrency",
            {"ReservedConcurrentExecutions": reserved},
            {"FunctionName": "VoiceAgent-Message"},
        )

    # 880 unreserved because this stack holds 20 already: 880 + 20 - 100 = 800 may be set aside.
    account_settings(aws, 1000, 880)
    deployed_with(20)
    assert concurrency(aws, {"reservedConcurrency": "800"}).level == "ok"
    account_settings(aws, 1000, 880)
    deployed_with(20)
    finding = concurrency(aws, {"reservedConcurrency": "801"})
    assert finding.level == "fail"
    assert "at most 800" in finding.text


# -- API Gateway's logging role --------------------------------------------------------------------


def test_relay_access_logs_need_the_account_role(aws: StubbedAws) -> None:
    def check(config: StackConfig) -> preflight.Finding:
        found = preflight.Findings()
        preflight.check_api_gateway_role(found, aws, config)
        return one(found, "API Gateway logging role")

    assert check(StackConfig()).level == "skip"
    aws.stub("apigateway").add_response("get_account", {})
    missing = check(StackConfig(relay_access_logs=True))
    assert missing.level == "fail"
    assert "relayAccessLogs=true needs the account's CloudWatch role" in missing.text
    role = "arn:aws:iam::123456789012:role/apigateway-cloudwatch-logs"
    aws.stub("apigateway").add_response("get_account", {"cloudwatchRoleArn": role})
    found = check(StackConfig(relay_access_logs=True))
    assert (found.level, found.text) == ("ok", "set (apigateway-cloudwatch-logs)")


# -- Bedrock ---------------------------------------------------------------------------------------

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_the_bedrock_models_are_the_chain_the_stack_resolves_and_none_means_skip() -> None:
    def models(context: dict[str, str], agent: AgentConfig = AGENT) -> tuple[str, ...]:
        return preflight.bedrock_models(StackConfig.from_context(context), agent)

    assert models({}) == tuple(m.model for m in AGENT.llm_chain() if m.provider == "bedrock")
    assert models({"llmProvider": "openai"}) == ()  # OpenAI: nothing to check
    assert models({"llmProvider": "bedrock", "llmModel": f"us.{CLAUDE}"}) == (f"us.{CLAUDE}",)
    chain = dataclasses.replace(
        AGENT,
        llm_provider="bedrock",
        llm_model=CLAUDE,
        llm_fallbacks=(ModelRef("bedrock", "amazon.nova-lite-v1:0"), ModelRef("openai", "gpt-4.1-mini")),
    )
    assert models({}, chain) == (CLAUDE, "amazon.nova-lite-v1:0")
    found = preflight.Findings()
    preflight.check_bedrock(found, StubbedAws(), ())
    assert (found.items[0].level, found.items[0].text) == ("skip", "the stack does not use Bedrock")


def test_an_inference_profile_is_checked_as_its_model() -> None:
    assert preflight.foundation_model_id(f"us.{CLAUDE}") == CLAUDE
    assert preflight.foundation_model_id(f"global.{CLAUDE}") == CLAUDE
    assert preflight.foundation_model_id(CLAUDE) == CLAUDE
    assert preflight.foundation_model_id("amazon.nova-pro-v1:0") == "amazon.nova-pro-v1:0"


def model(aws: StubbedAws, model_id: str = CLAUDE, *, details: Mapping[str, Any] = {}, **availability: Any) -> None:
    base = preflight.foundation_model_id(model_id)
    stub = aws.stub("bedrock")
    stub.add_response(
        "get_foundation_model",
        {
            "modelDetails": {
                "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{base}",
                "modelId": base,
                "responseStreamingSupported": True,
                "inferenceTypesSupported": ["INFERENCE_PROFILE"],
                "modelLifecycle": {"status": "ACTIVE"},
                **details,
            }
        },
        {"modelIdentifier": base},
    )
    answer = {
        "modelId": base,
        "agreementAvailability": {"status": "AVAILABLE"},
        "authorizationStatus": "AUTHORIZED",
        "entitlementAvailability": "AVAILABLE",
        "regionAvailability": "AVAILABLE",
        **availability,
    }
    stub.add_response("get_foundation_model_availability", answer, {"modelId": base})


def bedrock(aws: StubbedAws, model_id: str) -> preflight.Finding:
    found = preflight.Findings()
    preflight.check_bedrock(found, aws, (model_id,))
    (finding,) = found.items
    return finding


def test_a_model_the_account_can_invoke_passes(aws: StubbedAws) -> None:
    model(aws, f"us.{CLAUDE}")
    finding = bedrock(aws, f"us.{CLAUDE}")
    assert (finding.level, finding.text) == ("ok", f"available to this account in {REGION}")


@pytest.mark.parametrize(
    ("availability", "details", "says"),
    [
        ({"regionAvailability": "NOT_AVAILABLE"}, {}, "not offered in eu-west-1"),
        ({"authorizationStatus": "NOT_AUTHORIZED"}, {}, "first-time use form"),
        (
            {"entitlementAvailability": "NOT_AVAILABLE", "agreementAvailability": {"status": "NOT_AVAILABLE"}},
            {},
            "not subscribed to it: invoke it once as an administrator",
        ),
        ({"agreementAvailability": {"status": "ERROR", "errorMessage": "payment"}}, {}, "agreement failed: payment"),
        ({}, {"responseStreamingSupported": False}, "does not stream"),
    ],
)
def test_each_reason_bedrock_gives_fails_with_its_fix(
    aws: StubbedAws, availability: Mapping[str, Any], details: Mapping[str, Any], says: str
) -> None:
    model(aws, f"us.{CLAUDE}", details=details, **availability)
    finding = bedrock(aws, f"us.{CLAUDE}")
    assert finding.level == "fail"
    assert finding.check == f"Bedrock us.{CLAUDE}"
    assert says in finding.text


def test_a_model_that_needs_an_inference_profile_is_caught_by_its_bare_id(aws: StubbedAws) -> None:
    model(aws, CLAUDE)
    finding = bedrock(aws, CLAUDE)
    assert finding.level == "fail"
    assert f"use an inference profile id, such as us.{CLAUDE}" in finding.text
    model(aws, "amazon.titan-text-express-v1", details={"inferenceTypesSupported": ["ON_DEMAND"]})
    assert bedrock(aws, "amazon.titan-text-express-v1").level == "ok"


def test_pending_subscriptions_and_legacy_models_are_warnings(aws: StubbedAws) -> None:
    model(aws, f"us.{CLAUDE}", agreementAvailability={"status": "PENDING"})
    assert bedrock(aws, f"us.{CLAUDE}").level == "warn"
    model(aws, f"us.{CLAUDE}", details={"modelLifecycle": {"status": "LEGACY"}})
    finding = bedrock(aws, f"us.{CLAUDE}")
    assert (finding.level, "LEGACY" in finding.text) == ("warn", True)


def test_an_unknown_model_fails_and_a_denied_check_warns(aws: StubbedAws) -> None:
    aws.stub("bedrock").add_client_error("get_foundation_model", "ResourceNotFoundException", http_status_code=404)
    finding = bedrock(aws, "anthropic.claude-nope-v1:0")
    assert (finding.level, "no such model in eu-west-1" in finding.text) == ("fail", True)
    aws.stub("bedrock").add_client_error("get_foundation_model", "AccessDeniedException", http_status_code=403)
    assert bedrock(aws, CLAUDE).level == "warn"


# -- the command -----------------------------------------------------------------------------------


def test_cdk_context_takes_cdk_json_and_overrides(tmp_path: Any) -> None:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"stackName": "VoiceAgent", "relayAccessLogs": False}}))
    context = preflight.cdk_context(["relayAccessLogs=true", "alarmEmail=a=b@example.com"], cdk_json)
    assert context == {"stackName": "VoiceAgent", "relayAccessLogs": "true", "alarmEmail": "a=b@example.com"}
    with pytest.raises(ConfigError):
        preflight.cdk_context(["nonsense"], cdk_json)


def test_a_whole_run_reports_each_check_and_fails_on_a_problem(
    aws: StubbedAws, capsys: pytest.CaptureFixture[str]
) -> None:
    identity(aws)
    bootstrapped(aws)
    account_settings(aws, 10, 10)
    not_deployed(aws)
    argv = ["-c", "reservedConcurrency=5", "-c", "llmProvider=openai", "--require-approval", "never"]
    argv += ["--profile", "ignored-by-the-fake"]
    code = preflight.main(argv, aws=aws, node=lambda: "v24.11.1", today=TODAY)
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[1:] == [
        "  ok    Node.js: v24.11.1, supported by the CDK until 2028-10-30",
        f"  ok    AWS credentials: account 123456789012 in {REGION} as {ARN}",
        f"  ok    CDK bootstrap: version 29 in {REGION} (the stack needs 6 or later)",
        "  FAIL  Lambda concurrency: the stack asks for reservedConcurrency=5 but the account can set aside at most 0 "
        "(quota 10, 10 unreserved, Lambda keeps 10); request an increase in Service Quotas > AWS Lambda > "
        "Concurrent executions, or deploy without it (the default)",
        "  skip  API Gateway logging role: relayAccessLogs is off (WebSocket access logs need it)",
        "  skip  Bedrock model access: the stack does not use Bedrock",
        "preflight: 1 problem(s), 0 warning(s): fix them and run `make preflight` again",
    ]


def test_a_clean_account_passes_and_a_misspelt_option_is_a_problem(
    aws: StubbedAws, capsys: pytest.CaptureFixture[str]
) -> None:
    identity(aws)
    bootstrapped(aws)
    account_settings(aws, 1000, 1000)
    model(aws, AGENT.llm_model)  # the default agent's model, on Bedrock: available
    assert preflight.main([], aws=aws, node=lambda: "v24.11.1", today=TODAY) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "preflight passed (0 warning(s))"
    assert preflight.main(["-c", "reservedConcurency=5"], aws=aws, node=lambda: "v24.11.1", today=TODAY) == 1
    assert "unknown stack option(s) reservedConcurency" in capsys.readouterr().out
