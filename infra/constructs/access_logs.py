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


def stage_access_logs(
    scope: Construct, construct_id: str, *, fields: Mapping[str, str], retention_days: int
) -> tuple[logs.LogGroup, apigwv2.IAccessLogSettings]:
    """A log group (deleted with the stack) and settings that write ``fields`` to it as JSON.

    ``fields`` maps names to ``$context`` variables; include ``$context.requestId``.
    """
    group = logs.LogGroup(
        scope, construct_id, retention=retention(retention_days), removal_policy=cdk.RemovalPolicy.DESTROY
    )
    settings = _Settings(apigwv2.LogGroupLogDestination(group), apigw.AccessLogFormat.custom(json.dumps(fields)))
    return group, settings
