"""Access logs for an API Gateway v2 stage: a JSON line per request, in a log group with retention."""

from __future__ import annotations

import json
from collections.abc import Mapping

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.agent_function import retention


@jsii.implements(apigwv2.IAccessLogSettings)
class _Settings:
    def __init__(self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat | None:
        return self._format


# Log groups named under this prefix are covered by CloudWatch Logs' one account-wide statement for
# vended logs: a service delivering to them adds nothing to the account's log resource policy,
# which is capped at 5,120 characters (an account near the cap fails a deploy that needs a new one).
VENDED_LOGS_PREFIX = "/aws/vendedlogs/"


def access_log_group_name(stack_name: str, api: str) -> str:
    """``/aws/vendedlogs/apigateway/<stack>/<api>-access``: unique per stack (and region)."""
    return f"{VENDED_LOGS_PREFIX}apigateway/{stack_name}/{api}-access"


def stage_access_logs(
    scope: Construct, construct_id: str, *, api: str, fields: Mapping[str, str], retention_days: int
) -> tuple[logs.LogGroup, apigwv2.IAccessLogSettings]:
    """A log group (deleted with the stack) named for ``api`` under ``/aws/vendedlogs/``, and
    settings that write ``fields`` to it as JSON.

    ``fields`` maps names to ``$context`` variables; include ``$context.requestId``.
    """
    group = logs.LogGroup(
        scope,
        construct_id,
        log_group_name=access_log_group_name(cdk.Stack.of(scope).stack_name, api),
        retention=retention(retention_days),
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    settings = _Settings(apigwv2.LogGroupLogDestination(group), apigw.AccessLogFormat.custom(json.dumps(fields)))
    return group, settings
