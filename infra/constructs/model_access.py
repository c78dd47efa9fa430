"""Permission to call exactly the Bedrock models the agent's chain names, and nothing else.

ConverseStream needs ``bedrock:InvokeModelWithResponseStream`` on what the request names
(docs/models.md, "IAM"):

- a foundation model id (``amazon.nova-lite-v1:0``): that model in the stack's Region,
  ``arn:<partition>:bedrock:<region>::foundation-model/amazon.nova-lite-v1:0``;
- a cross-Region inference profile id (``us.amazon.nova-lite-v1:0``): the profile in the stack's
  Region (``arn:...:<region>:<account>:inference-profile/us.amazon.nova-lite-v1:0``) and the
  foundation model in every Region the profile may route the request to. A profile routes within
  its geography (``us``, ``eu``, ``apac``, ...); the Regions below are each geography's Bedrock
  Regions as AWS's inference-profile tables list them. A Region where the profile does not route
  grants nothing (no such model is called there); a Region missing here would fail the calls that
  land in it, so when AWS adds one to a geography, add it here;
- a global profile (``global.``): the profile, the model in the stack's Region, and the model
  with no Region (``arn:...:bedrock:::foundation-model/<id>``), the form AWS documents for global
  routing;
- an ARN: as given (a profile's ARN also gets its foundation models, as above).

No wildcard: a fork that changes the model changes the grant, and cdk-nag and the infra tests
hold the statement to these ARNs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from voice_agent.model_choice import BEDROCK_MODEL_ARN, BEDROCK_MODEL_ID

ACTION: Final = "bedrock:InvokeModelWithResponseStream"

GEOGRAPHY_REGIONS: Final[dict[str, tuple[str, ...]]] = {
    "us": ("us-east-1", "us-east-2", "us-west-1", "us-west-2"),
    "us-gov": ("us-gov-east-1", "us-gov-west-1"),
    "eu": (
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
    ),
    "apac": (
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
    ),
    "jp": ("ap-northeast-1", "ap-northeast-3"),
    "au": ("ap-southeast-2", "ap-southeast-4"),
    "ca": ("ca-central-1", "ca-west-1"),
}


def model_arns(model: str, *, partition: str, region: str, account: str) -> list[str]:
    """Every resource ARN a ConverseStream request for ``model`` needs (strings or CDK tokens)."""
    arn = BEDROCK_MODEL_ARN.match(model)
    if arn is not None:
        if arn.group("kind") == "foundation-model":
            return [model]
        return [model, *_routed(arn.group("id"), partition=arn.group("partition"), region=arn.group("region"))]
    match = BEDROCK_MODEL_ID.match(model)
    if match is None:
        raise ValueError(f"not a Bedrock model id, inference profile id or ARN: {model!r}")
    if match.group("profile") is None:
        return [f"arn:{partition}:bedrock:{region}::foundation-model/{model}"]
    profile = f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model}"
    return [profile, *_routed(model, partition=partition, region=region)]


def _routed(profile_id: str, *, partition: str, region: str) -> list[str]:
    """The foundation models a cross-Region profile may send a request to."""
    geography, _, model = profile_id.partition(".")
    if geography == "global":
        regions: Sequence[str] = (region, "")
    else:
        regions = (region, *GEOGRAPHY_REGIONS[geography])
    arns: list[str] = []
    for r in regions:
        arn = f"arn:{partition}:bedrock:{r}::foundation-model/{model}"
        if arn not in arns:
            arns.append(arn)
    return arns


class ModelAccess(Construct):
    """One statement on ``role``: ConverseStream on the chain's Bedrock models."""

    def __init__(self, scope: Construct, construct_id: str, *, role: iam.IRole, models: Sequence[str]) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        resources: list[str] = []
        for model in models:
            for arn in model_arns(model, partition=stack.partition, region=stack.region, account=stack.account):
                if arn not in resources:
                    resources.append(arn)
        self.resources = tuple(resources)
        self.policy = iam.Policy(
            self,
            "Policy",
            statements=[
                iam.PolicyStatement(sid="ConverseStreamOnTheAgentsModels", actions=[ACTION], resources=resources)
            ],
        )
        self.policy.attach_to_role(role)
