"""cdk-nag acknowledgements: every suppression in the stack goes through here, with its reason."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (``AwsSolutions-XX`` or ``AwsSolutions-IAM5[Resource::...]``)
    on ``scope`` and everything below it. The reason is shown in the validation report."""
    if len(reason) < 40:
        raise ValueError(f"a suppression of {rule} needs a real reason, not {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))
