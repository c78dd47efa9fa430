"""The relay: the API Gateway WebSocket API that Twilio ConversationRelay connects to."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.access_logs import stage_access_logs
from infra.nag import acknowledge

# The header Twilio signs every upgrade with: the authorizer's identity source (an upgrade without
# it is refused with 401 before any function runs).
SIGNATURE_HEADER_NAME = "X-Twilio-Signature"

# Access-log fields: who connected, which route, how it ended. API Gateway has no variable for a
# message body, so no transcript can reach these logs.
_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "connectionId": "$context.connectionId",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "integrationLatency": "$context.integrationLatency",
    "error": "$context.error.message",
    "integrationError": "$context.integrationErrorMessage",
    "requestTime": "$context.requestTimeEpoch",
}


class RelayApi(Construct):
    """A WebSocket API with one stage and the three routes ConversationRelay needs.

    Every ConversationRelay message goes to ``$default`` (one message function handles them all);
    ``$connect`` checks Twilio's signature and ``$disconnect`` closes the session. The stage is
    throttled (a cost guard) and never logs message bodies: data tracing stays off.

    The URLs exist before the routes (functions need them in their environment), so routes are
    attached afterwards with :meth:`route`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_name: str,
        rate_limit: int,
        burst_limit: int,
        access_logs: bool,
        log_retention_days: int,
        domain_name: str | None = None,
        base_path: str | None = None,
        certificate_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            description="Twilio ConversationRelay WebSocket for the voice agent",
            # No route but $default is defined, so every frame lands there; selecting on "type"
            # (which every ConversationRelay frame carries) means a fork can add, say, an
            # "interrupt" route for a slimmer handler without touching anything else.
            route_selection_expression="$request.body.type",
        )
        self.domain: apigwv2.DomainName | None = None
        self.access_log_group: logs.LogGroup | None = None
        mapping: apigwv2.DomainMappingOptions | None = None
        if domain_name is not None:
            if certificate_arn is None:
                raise ValueError("a custom domain needs a certificate")
            self.domain = apigwv2.DomainName(
                self,
                "Domain",
                domain_name=domain_name,
                certificate=acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn),
            )
            mapping = apigwv2.DomainMappingOptions(domain_name=self.domain, mapping_key=base_path)

        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=stage_name,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
            domain_mapping=mapping,
            access_log_settings=self._access_log_settings(log_retention_days) if access_logs else None,
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigwv2.CfnStage)
        # Said explicitly, not left to a default: data tracing would copy every frame (transcripts)
        # into CloudWatch, and execution logging needs an account-wide role.
        cfn_stage.add_property_override("DefaultRouteSettings.DataTraceEnabled", False)
        cfn_stage.add_property_override("DefaultRouteSettings.LoggingLevel", "OFF")
        if not access_logs:
            acknowledge(
                self.stage,
                "AwsSolutions-APIG1",
                "WebSocket access logs need the account-wide API Gateway CloudWatch role, which a fresh "
                "account lacks and a stack should not overwrite; turn them on with -c relayAccessLogs=true "
                "once the role is set (docs/deploy.md). The functions log every connect and frame.",
            )

        # What Twilio dials, and what the signature of the upgrade request is computed over.
        if domain_name is not None:
            self.public_url = f"wss://{domain_name}" + (f"/{base_path}" if base_path else "")
        else:
            self.public_url = self.stage.url
        # The management API for PostToConnection: always the execute-api endpoint with the stage,
        # which works with or without a custom domain.
        self.callback_url = self.stage.callback_url

    def _access_log_settings(self, log_retention_days: int) -> apigwv2.IAccessLogSettings:
        self.access_log_group, settings = stage_access_logs(
            self, "AccessLogs", api="relay", fields=_ACCESS_LOG_FIELDS, retention_days=log_retention_days
        )
        return settings

    def route(self, *, connect: lambda_.IFunction, message: lambda_.IFunction, disconnect: lambda_.IFunction) -> None:
        """Attach the three routes, each a Lambda proxy integration (API Gateway waits at most 29 s)."""
        # The connect function is also the $connect route's REQUEST authorizer: it makes the same
        # decision, and the context it returns (the socket's call) reaches every later event of the
        # connection, so any message function environment knows a frame's call without a read.
        # No caching: every upgrade is signed over its own URL.
        authorizer = authorizers.WebSocketLambdaAuthorizer(
            "CallAuthorizer", connect, identity_source=[f"route.request.header.{SIGNATURE_HEADER_NAME}"]
        )
        for route_key, function, name in (
            ("$connect", connect, "Connect"),
            ("$default", message, "Message"),
            ("$disconnect", disconnect, "Disconnect"),
        ):
            route = self.api.add_route(
                route_key,
                integration=integrations.WebSocketLambdaIntegration(f"{name}Integration", function),
                authorizer=authorizer if route_key == "$connect" else None,
            )
            if route_key != "$connect":
                acknowledge(
                    route,
                    "AwsSolutions-APIG4",
                    "API Gateway allows an authorizer on $connect only; it checks the X-Twilio-Signature "
                    "header over the public URL and the call's token, and no other route is reachable "
                    "without a connection accepted that way.",
                )

    def grant_manage_connections(self, function: lambda_.IFunction) -> iam.Grant:
        """PostToConnection (and GET/DELETE) on this API's stage only: never ``*``."""
        grant = self.stage.grant_management_api_access(function)
        stack = cdk.Stack.of(self)
        api_id = stack.resolve(stack.get_logical_id(self._cfn_api))
        # cdk-nag names a wildcard finding by the resource as it prints it.
        connections = (
            "arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
            f"<{api_id}>/{self.stage.stage_name}/*/@connections/*"
        )
        if function.role is not None:
            acknowledge(
                function.role,
                f"AwsSolutions-IAM5[Resource::{connections}]",
                "Connection ids are created per call at run time, so the grant names this API and stage "
                "and leaves only the connection id (and the HTTP verb) open.",
            )
        return grant

    @property
    def _cfn_api(self) -> apigwv2.CfnApi:
        cfn_api = self.api.node.default_child
        assert isinstance(cfn_api, apigwv2.CfnApi)
        return cfn_api
