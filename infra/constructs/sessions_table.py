"""The sessions table: calls, connections and turns, shaped by ``voice_agent.table_schema``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.nag import acknowledge
from infra.permissions import SESSION_STORE_ACTIONS
from voice_agent import table_schema

_ATTRIBUTE_TYPES: Mapping[str, dynamodb.AttributeType] = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _key(key_type: str) -> dynamodb.Attribute:
    """The key attribute of ``key_type`` (HASH or RANGE), exactly as the runtime defines it."""
    name = next(k["AttributeName"] for k in table_schema.KEY_SCHEMA if k["KeyType"] == key_type)
    kind = next(a["AttributeType"] for a in table_schema.ATTRIBUTE_DEFINITIONS if a["AttributeName"] == name)
    return dynamodb.Attribute(name=name, type=_ATTRIBUTE_TYPES[kind])


class SessionsTable(Construct):
    """On-demand (nothing to pay while idle), TTL on every item, point-in-time recovery for
    ``recovery_days`` (0: off).

    Retained when the stack is deleted unless ``retain`` is false: it holds call transcripts.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, retain: bool, deletion_protection: bool, recovery_days: int = 7
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=_key("HASH"),
            sort_key=_key("RANGE"),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=table_schema.TTL_ATTRIBUTE,
            # The recovery window is how long a transcript outlives its TTL: a choice (1..35 days, or off).
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=recovery_days > 0,
                recovery_period_in_days=recovery_days if recovery_days > 0 else None,
            ),
            deletion_protection=deletion_protection,
            removal_policy=cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY,
        )
        if recovery_days == 0:
            acknowledge(
                self.table,
                "AwsSolutions-DDB3",
                "Point-in-time recovery is off on purpose (pointInTimeRecoveryDays=0): its window would keep "
                "every transcript restorable for that long after its TTL deleted it.",
            )

    def grant_session_store(self, grantee: iam.IGrantable, actions: Sequence[str]) -> iam.Grant:
        """``actions`` (one of the ``*_STORE_ACTIONS`` above) on this table only."""
        unknown = set(actions) - set(SESSION_STORE_ACTIONS)
        if unknown:
            raise ValueError(f"not a session store action: {', '.join(sorted(unknown))}")
        return self.table.grant(grantee, *actions)
