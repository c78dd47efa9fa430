"""A credential issued by a third party (Twilio, OpenAI), kept in Secrets Manager."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.nag import acknowledge

# What the runtime calls (voice_agent/adapters/secrets.py): ``grant_read`` would add DescribeSecret,
# which no function uses.
READ_ACTIONS = ("secretsmanager:GetSecretValue",)

# The runtime refuses a secret whose value starts with "REPLACE", so a stack deployed before the
# value is put in fails loudly ("still holds its placeholder") instead of calling out with garbage.
PLACEHOLDER = "REPLACE_ME"


class ProviderSecret(Construct):
    """Created holding a placeholder; the real value is put in once with
    ``aws secretsmanager put-secret-value`` (docs/deploy.md). CloudFormation never overwrites it
    afterwards because the template's value does not change.
    """

    def __init__(self, scope: Construct, construct_id: str, *, description: str) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description=description,
            secret_string_value=cdk.SecretValue.unsafe_plain_text(PLACEHOLDER),
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "The value is a credential issued by Twilio or OpenAI; Secrets Manager cannot rotate it. "
            "Rotate it at the provider, then put the new value with put-secret-value (docs/deploy.md).",
        )

    def grant_get_value(self, grantee: iam.IGrantable) -> iam.Grant:
        """GetSecretValue on this secret only (the one call the runtime makes, once per cold start)."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(READ_ACTIONS), resource_arns=[self.secret.secret_arn]
        )
