"""The webhook: an HTTP API in front of the FastAPI function that answers Twilio with TwiML.

Why an HTTP API and not a Lambda Function URL: the function checks Twilio's signature over its
own public URL, so that URL must be in its environment. A Function URL is a child of the function
(``AWS::Lambda::Url`` references it), so feeding its URL back into the function's environment is a
CloudFormation cycle. The HTTP API's URL is known from the API resource alone, which does not
depend on the function. It also gives stage throttling (a cost guard), access logs without an
account-wide role, and custom domains. Its price, about $1 per million requests, is a rounding
error next to a phone call.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constructs.access_logs import stage_access_logs
from infra.nag import acknowledge

# The webhook's routes (method, path). Twilio posts to /voice when a call starts and to /action
# when a ConversationRelay session ends; /health is for humans and uptime checks.
ROUTES: tuple[tuple[apigwv2.HttpMethod, str], ...] = (
    (apigwv2.HttpMethod.POST, "/voice"),
    (apigwv2.HttpMethod.POST, "/action"),
    (apigwv2.HttpMethod.POST, "/dial-status"),
    (apigwv2.HttpMethod.GET, "/health"),
)
VOICE_PATH = "/voice"

_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "integrationLatency": "$context.integrationLatency",
    "responseLatency": "$context.responseLatency",
    "error": "$context.error.message",
    "integrationError": "$context.integrationErrorMessage",
    "requestTime": "$context.requestTimeEpoch",
}


class WebhookApi(Construct):
    """An HTTP API with explicit routes (anything else is a 404 that never invokes the function),
    a throttled ``$default`` stage and JSON access logs (route and status; no form bodies)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        rate_limit: int,
        burst_limit: int,
        log_retention_days: int,
        domain_name: str | None = None,
        certificate_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            description="Twilio voice webhook (TwiML) for the voice agent",
            create_default_stage=False,
        )
        self.domain: apigwv2.DomainName | None = None
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
            mapping = apigwv2.DomainMappingOptions(domain_name=self.domain)
        self.access_log_group, log_settings = stage_access_logs(
            self, "AccessLogs", api="webhook", fields=_ACCESS_LOG_FIELDS, retention_days=log_retention_days
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
            domain_mapping=mapping,
            access_log_settings=log_settings,
        )
        # The base URL the function signs against (no trailing slash; the $default stage has no
        # path). Built from the API id, so the function can hold it without a dependency cycle.
        stack = cdk.Stack.of(self)
        if domain_name is not None:
            self.base_url = f"https://{domain_name}"
        else:
            self.base_url = f"https://{self.api.api_id}.execute-api.{stack.region}.{stack.url_suffix}"
        self.voice_url = self.base_url + VOICE_PATH

    def route(self, handler: lambda_.IFunction) -> None:
        """Send every webhook route to ``handler`` (one integration, payload format 2.0)."""
        integration = integrations.HttpLambdaIntegration("Integration", handler)
        for method, path in ROUTES:
            for route in self.api.add_routes(path=path, methods=[method], integration=integration):
                acknowledge(
                    route,
                    "AwsSolutions-APIG4",
                    "Twilio cannot present AWS credentials or a token; the function checks the "
                    "X-Twilio-Signature header over the public URL and answers 403 when it does not match "
                    "(/health answers a constant and reveals nothing).",
                )
