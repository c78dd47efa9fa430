"""Check, with read-only calls, what a first deployment trips on, before `cdk deploy` finds out.

    python -m infra.cli.preflight [-c key=value ...] [--profile NAME]    # make preflight (make deploy runs it first)

- Node.js: the CDK supports an LTS version until six months after its end of life;
- AWS credentials and region (sts:GetCallerIdentity);
- the CDK bootstrap of the account and region (ssm:GetParameter on its version, cloudformation:DescribeStacks);
- the account's Lambda concurrency quota against what the stack reserves or provisions
  (lambda:GetAccountSettings; a reservation that would leave fewer than 100 unreserved fails the
  deploy, and new accounts can have a quota of 10);
- the account's API Gateway CloudWatch role, when relayAccessLogs is on (apigateway:GetAccount);
- access to the configured Bedrock models in the region (bedrock:GetFoundationModel,
  bedrock:GetFoundationModelAvailability), once the stack is configured for Bedrock.

Options come from cdk.json's context and ``-c key=value``, as for the stack itself; other CDK
arguments are ignored, so ``make deploy CDK_ARGS=...`` hands it the same line. Each problem is one
line with its fix. Exit status: 1 if a check failed, 0 otherwise (warnings do not fail).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from infra.config import ConfigError, StackConfig

if TYPE_CHECKING:
    from voice_agent.agent.config import AgentConfig

CDK_JSON: Final = Path(__file__).resolve().parents[2] / "cdk.json"
# The CDK's Node.js support (docs.aws.amazon.com/cdk/v2/guide/node-versions.html): LTS versions,
# until six months after the Node.js end of life. Major -> (Node.js end of life, CDK support ends).
# Update the table when the page changes.
NODE_SUPPORT: Final = {
    18: (date(2025, 5, 30), date(2025, 11, 30)),
    20: (date(2026, 4, 30), date(2026, 10, 30)),
    22: (date(2027, 4, 30), date(2027, 10, 30)),
    24: (date(2028, 4, 30), date(2028, 10, 30)),
}
RECOMMENDED_NODE: Final = 24
OLDEST_NODE: Final = 18  # older than any version the table knows: unsupported
# What the stack's cloud assembly requires (manifest.json, requiresBootstrapStackVersion; a test
# keeps the two equal).
MIN_BOOTSTRAP_VERSION: Final = 6
DEFAULT_QUALIFIER: Final = "hnb659fds"
QUALIFIER_CONTEXT_KEY: Final = "@aws-cdk/core:bootstrapQualifier"
TOOLKIT_STACK: Final = "CDKToolkit"
# Lambda keeps this much of the account's concurrency unreserved (or all of it, if the quota is
# smaller): a reservation or provisioned concurrency that would cut into it fails the deploy.
UNRESERVED_MINIMUM: Final = 100
LOW_CONCURRENCY_QUOTA: Final = 100
# Inference profile ids start with a geography; availability is asked about the model itself.
_PROFILE_PREFIXES: Final = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")
_MAX_PAGES: Final = 5

Level = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    text: str  # one line: what was found and, for a problem, the fix


@dataclass
class Findings:
    items: list[Finding] = field(default_factory=list)

    def add(self, level: Level, check: str, text: str) -> None:
        self.items.append(Finding(level, check, text))

    def count(self, level: Level) -> int:
        return sum(f.level == level for f in self.items)

    @property
    def passed(self) -> bool:
        return self.count("fail") == 0

    def lines(self) -> list[str]:
        shown = {"fail": "FAIL", "warn": "WARN", "ok": "ok", "skip": "skip"}
        out = [f"  {shown[f.level]:<4}  {f.check}: {f.text}" for f in self.items]
        fails, warns = self.count("fail"), self.count("warn")
        if fails:
            out.append(f"preflight: {fails} problem(s), {warns} warning(s): fix them and run `make preflight` again")
        else:
            out.append(f"preflight passed ({warns} warning(s))")
        return out


class Aws(Protocol):
    region: str | None

    def client(self, service: str) -> Any: ...


class SessionAws:
    """boto3 clients for the profile and region the CDK CLI would use (AWS_REGION first)."""

    def __init__(self, profile: str | None = None, env: Mapping[str, str] | None = None) -> None:
        import boto3

        env = os.environ if env is None else env
        self._session: Any = boto3.Session(profile_name=profile)  # clients by name, not one typed service
        self.region: str | None = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or self._session.region_name

    def client(self, service: str) -> Any:
        from botocore.config import Config

        config = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3})
        return self._session.client(service, region_name=self.region, config=config)


def aws_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) if code else type(exc).__name__


# -- Node.js ---------------------------------------------------------------------------------------


def node_version() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def check_node(found: Findings, version: str | None, today: date, npm: bool = True) -> None:
    check = "Node.js"
    fix = f"install Node.js {RECOMMENDED_NODE} (LTS; CDK support until {NODE_SUPPORT[RECOMMENDED_NODE][1]})"
    if version is None:
        found.add("fail", check, f"`node` not found on the PATH: {fix}")
        return
    match = re.match(r"^v?(\d+)\.", version)
    if match is None:
        found.add("fail", check, f"cannot read the version {version!r}: {fix}")
        return
    major = int(match.group(1))
    eol, ends = NODE_SUPPORT.get(major, (None, None))
    if not npm:
        found.add("fail", check, f"{version} without npm (make deploy installs the pinned CDK CLI with it): {fix}")
    elif major < OLDEST_NODE or (ends is not None and today > ends):
        ended = f" on {ends}" if ends else ""
        found.add("fail", check, f"{version}: the CDK's support for Node.js {major} ended{ended}; {fix}")
    elif ends is None and major % 2:
        found.add("warn", check, f"{version} is not an LTS release and the CDK supports LTS only; {fix}")
    elif ends is None:
        found.add("warn", check, f"{version} is newer than this check knows (the CDK supports LTS releases)")
    elif eol is not None and today > eol:
        found.add(
            "warn",
            check,
            f"{version}: Node.js {major} reached its end of life on {eol}, CDK support ends {ends}; {fix}",
        )
    else:
        found.add("ok", check, f"{version}, supported by the CDK until {ends}")


# -- AWS -------------------------------------------------------------------------------------------


def check_credentials(found: Findings, aws: Aws) -> str | None:
    """The account id, or None (then nothing else in AWS can be checked)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    check = "AWS credentials"
    if not aws.region:
        found.add(
            "fail", check, "no region: export AWS_REGION=<region> (for example us-east-1), or set one in the profile"
        )
        return None
    try:
        identity = aws.client("sts").get_caller_identity()
    except NoCredentialsError:
        found.add(
            "fail",
            check,
            "none found: `aws configure sso` (or `aws configure`), then export AWS_PROFILE=<profile>",
        )
        return None
    except ClientError as exc:
        code = aws_error(exc)
        fix = "`aws sso login` (or new access keys)" if "Expired" in code else "check the profile's keys"
        found.add("fail", check, f"refused ({code}): {fix}")
        return None
    except BotoCoreError as exc:
        found.add("fail", check, f"cannot reach STS in {aws.region} ({aws_error(exc)}): is the region right?")
        return None
    account = str(identity["Account"])
    found.add("ok", check, f"account {account} in {aws.region} as {identity['Arn']}")
    return account


def check_bootstrap(found: Findings, aws: Aws, qualifier: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    check = "CDK bootstrap"
    parameter = f"/cdk-bootstrap/{qualifier}/version"
    try:
        version = int(aws.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"])
    except ClientError as exc:
        code = aws_error(exc)
        if code == "ParameterNotFound":
            found.add("fail", check, f"{aws.region} is not bootstrapped (no {parameter}): run `make bootstrap`")
        else:
            found.add("warn", check, f"cannot read {parameter} ({code}); `make bootstrap` is safe to run again")
        return
    except (BotoCoreError, ValueError) as exc:
        found.add("warn", check, f"cannot read {parameter} ({aws_error(exc)})")
        return
    if version < MIN_BOOTSTRAP_VERSION:
        found.add(
            "fail",
            check,
            f"version {version} in {aws.region}, the stack needs {MIN_BOOTSTRAP_VERSION} or later: "
            "run `make bootstrap` (it upgrades in place)",
        )
        return
    status = _toolkit_status(aws)
    if status is not None and (status.endswith("_FAILED") or status.startswith(("ROLLBACK", "DELETE"))):
        found.add(
            "fail",
            check,
            f"the {TOOLKIT_STACK} stack is {status}: delete it in the CloudFormation console, then `make bootstrap`",
        )
        return
    found.add("ok", check, f"version {version} in {aws.region} (the stack needs {MIN_BOOTSTRAP_VERSION} or later)")


def _toolkit_status(aws: Aws) -> str | None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = aws.client("cloudformation").describe_stacks(StackName=TOOLKIT_STACK)["Stacks"]
    except (ClientError, BotoCoreError):
        return None  # another toolkit stack name, or no permission: the version parameter said enough
    return str(stacks[0]["StackStatus"]) if stacks else None


def check_concurrency(found: Findings, aws: Aws, config: StackConfig) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    check = "Lambda concurrency"
    try:
        limits = aws.client("lambda").get_account_settings()["AccountLimit"]
    except (ClientError, BotoCoreError) as exc:
        found.add("warn", check, f"cannot read the account's Lambda settings ({aws_error(exc)})")
        return
    quota, unreserved = int(limits["ConcurrentExecutions"]), int(limits["UnreservedConcurrentExecutions"])
    wanted, what = _concurrency_wanted(config)
    increase = "request an increase in Service Quotas > AWS Lambda > Concurrent executions"
    if wanted == 0:
        if quota < LOW_CONCURRENCY_QUOTA:
            found.add(
                "warn",
                check,
                f"the account's quota in {aws.region} is {quota}: every frame of a call is one invocation, so a "
                f"few calls at once will be throttled; {increase}",
            )
        else:
            found.add("ok", check, f"quota {quota}, {unreserved} unreserved; the stack reserves none")
        return
    held = _held_by_stack(aws, config.stack_name)
    keep = min(UNRESERVED_MINIMUM, quota)
    available = unreserved + held - keep
    if wanted > available:
        found.add(
            "fail",
            check,
            f"the stack asks for {what} but the account can set aside at most {max(available, 0)} "
            f"(quota {quota}, {unreserved} unreserved, Lambda keeps {keep}); {increase}, or deploy without "
            "it (the default)",
        )
        return
    found.add("ok", check, f"{what} fits: quota {quota}, {unreserved} unreserved, Lambda keeps {keep}")


def _concurrency_wanted(config: StackConfig) -> tuple[int, str]:
    if config.reserved_concurrency is not None:
        return config.reserved_concurrency, f"reservedConcurrency={config.reserved_concurrency}"
    provisioned = config.message_function_provisioned_concurrency
    if provisioned > 0:
        return provisioned, f"messageFunctionProvisionedConcurrency={provisioned}"
    return 0, ""


def _held_by_stack(aws: Aws, stack_name: str) -> int:
    """What the already deployed stack's functions reserve: a redeploy gives it back first."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cfn, lam = aws.client("cloudformation"), aws.client("lambda")
        request: dict[str, Any] = {"StackName": stack_name}
        functions: list[str] = []
        for _ in range(_MAX_PAGES):
            page = cfn.list_stack_resources(**request)
            functions += [
                r["PhysicalResourceId"]
                for r in page.get("StackResourceSummaries", [])
                if r.get("ResourceType") == "AWS::Lambda::Function" and r.get("PhysicalResourceId")
            ]
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
        return sum(
            int(lam.get_function_concurrency(FunctionName=f).get("ReservedConcurrentExecutions", 0)) for f in functions
        )
    except (ClientError, BotoCoreError):
        return 0  # not deployed yet (or not readable): nothing to give back


def check_api_gateway_role(found: Findings, aws: Aws, config: StackConfig) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    check = "API Gateway logging role"
    if not config.relay_access_logs:
        found.add("skip", check, "relayAccessLogs is off (WebSocket access logs need it)")
        return
    try:
        role = aws.client("apigateway").get_account().get("cloudwatchRoleArn")
    except (ClientError, BotoCoreError) as exc:
        found.add("warn", check, f"cannot read the account's API Gateway settings ({aws_error(exc)})")
        return
    if not role:
        found.add(
            "fail",
            check,
            f"relayAccessLogs=true needs the account's CloudWatch role for API Gateway in {aws.region}: "
            "set it once (docs/deploy.md, 'WebSocket access logs') or deploy without relayAccessLogs",
        )
        return
    found.add("ok", check, f"set ({role.rsplit('/', 1)[-1]})")


def bedrock_models(config: StackConfig, agent: AgentConfig | None = None) -> tuple[str, ...]:
    """The Bedrock models the stack will grant and every turn may call: the chain the stack itself
    resolves (the agent's models, ``llmProvider`` / ``llmModel`` in front); () without Bedrock."""
    from voice_agent.agent.config import AGENT

    chain = (agent or AGENT).llm_chain(config.llm_provider, config.llm_model)
    return tuple(dict.fromkeys(ref.model for ref in chain if ref.provider == "bedrock"))


def foundation_model_id(model_id: str) -> str:
    """``us.anthropic.claude-...`` (an inference profile) -> ``anthropic.claude-...``."""
    head, _, rest = model_id.partition(".")
    return rest if head in _PROFILE_PREFIXES and rest.count(".") >= 1 else model_id


def check_bedrock(found: Findings, aws: Aws, models: Sequence[str]) -> None:
    check = "Bedrock model access"
    if not models:
        found.add("skip", check, "the stack does not use Bedrock")
        return
    client = aws.client("bedrock")
    for model in models:
        _check_model(found, client, model, aws.region or "?")


def _check_model(found: Findings, client: Any, model: str, region: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    check = f"Bedrock {model}"
    base = foundation_model_id(model)
    try:
        details = client.get_foundation_model(modelIdentifier=base)["modelDetails"]
        availability = client.get_foundation_model_availability(modelId=base)
    except ClientError as exc:
        code = aws_error(exc)
        if code in ("ResourceNotFoundException", "ValidationException"):
            found.add("fail", check, f"no such model in {region} ({code}): check the model id and the region")
        else:
            found.add(
                "warn", check, f"cannot check it ({code}): the deploying identity may lack bedrock:Get* permissions"
            )
        return
    except BotoCoreError as exc:
        found.add("warn", check, f"cannot check it ({aws_error(exc)})")
        return
    problems = list(_model_problems(model, base, details, availability, region))
    if any(level == "fail" for level, _ in problems):
        found.add("fail", check, "; ".join(text for _, text in problems))
    elif problems:
        found.add("warn", check, "; ".join(text for _, text in problems))
    else:
        found.add("ok", check, f"available to this account in {region}")


def _model_problems(
    model: str, base: str, details: Mapping[str, Any], availability: Mapping[str, Any], region: str
) -> Iterable[tuple[Level, str]]:
    """Bedrock's own words for why the account cannot invoke the model, each with what to do."""
    if availability.get("regionAvailability") != "AVAILABLE":
        yield "fail", f"not offered in {region}: choose a region that offers it, or a cross-region inference profile"
    if availability.get("authorizationStatus") != "AUTHORIZED":
        yield (
            "fail",
            "Bedrock reports NOT_AUTHORIZED: an IAM policy or SCP denies it, or (Anthropic) the account's first-time "
            "use form is not submitted (Bedrock console > Model catalog)",
        )
    agreement = availability.get("agreementAvailability") or {}
    status = agreement.get("status")
    if status == "ERROR":
        yield "fail", f"its Marketplace agreement failed: {agreement.get('errorMessage') or 'no detail'}"
    elif status == "PENDING":
        yield "warn", "its Marketplace subscription is still pending (it can take 15 minutes): run preflight again"
    elif availability.get("entitlementAvailability") != "AVAILABLE":
        yield (
            "fail",
            "the account is not subscribed to it: invoke it once as an administrator (Bedrock console playground) "
            "so Bedrock subscribes; the stack's function role may not subscribe (aws-marketplace:Subscribe), and "
            "the account needs a valid payment method",
        )
    if not details.get("responseStreamingSupported", True):
        yield "fail", "it does not stream replies, which the agent needs: choose a streaming model"
    inference = set(details.get("inferenceTypesSupported") or [])
    if model == base and "ON_DEMAND" not in inference:
        yield "fail", f"it cannot be invoked on demand by its id: use an inference profile id, such as us.{base}"
    lifecycle = (details.get("modelLifecycle") or {}).get("status")
    if lifecycle == "LEGACY":
        yield "warn", "Bedrock marks it LEGACY (to be retired): plan a newer model"


# -- the command ------------------------------------------------------------------------------------


def cdk_context(overrides: Sequence[str], cdk_json: Path = CDK_JSON) -> dict[str, Any]:
    """cdk.json's context with ``key=value`` overrides, as the CDK CLI builds it for the app."""
    try:
        context = dict(json.loads(cdk_json.read_text(encoding="utf-8")).get("context", {}))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {cdk_json}: {exc}") from exc
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"-c takes key=value, got {item!r}")
        context[key] = value
    return context


def run_checks(
    context: Mapping[str, Any],
    aws: Aws,
    *,
    node: str | None,
    npm: bool,
    today: date,
    agent: AgentConfig | None = None,
) -> Findings:
    found = Findings()
    check_node(found, node, today, npm=npm)
    try:
        config = StackConfig.from_context(context)  # what the synth will refuse, refused here first
    except ConfigError as exc:
        found.add("fail", "stack options", str(exc).replace("\n", " "))
        return found
    if check_credentials(found, aws) is None:
        found.add("skip", "the AWS checks", "they need credentials and a region")
        return found
    check_bootstrap(found, aws, str(context.get(QUALIFIER_CONTEXT_KEY) or DEFAULT_QUALIFIER))
    check_concurrency(found, aws, config)
    check_api_gateway_role(found, aws, config)
    check_bedrock(found, aws, bedrock_models(config, agent))
    return found


def main(
    argv: Sequence[str] | None = None,
    *,
    aws: Aws | None = None,
    node: Callable[[], str | None] = node_version,
    today: date | None = None,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="as for cdk")
    parser.add_argument("--profile", help="the AWS profile, as for cdk")
    args, _ignored = parser.parse_known_args(argv)  # other CDK arguments (--require-approval, ...) are not ours
    try:
        context = cdk_context(args.context)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from voice_agent.agent.config import AGENT

    found = run_checks(
        context,
        aws or SessionAws(args.profile),
        node=node(),
        npm=shutil.which("npm") is not None,
        today=today or date.today(),
        agent=AGENT,
    )
    print("preflight: what a first deployment trips on (read-only AWS calls)")
    for line in found.lines():
        print(line)
    return 0 if found.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
