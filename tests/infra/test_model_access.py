"""Which ARNs a model id needs (pure: no synthesis): foundation models, geographic and global
inference profiles, ARNs."""

from __future__ import annotations

import pytest

from infra.constructs.model_access import GEOGRAPHY_REGIONS, model_arns

WHERE = {"partition": "aws", "region": "eu-west-1", "account": "123456789012"}


def test_a_foundation_model_is_the_model_in_the_stacks_region() -> None:
    assert model_arns("amazon.nova-micro-v1:0", **WHERE) == [
        "arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-micro-v1:0"
    ]


def test_a_geographic_profile_is_the_profile_and_the_model_everywhere_it_routes() -> None:
    arns = model_arns("eu.amazon.nova-lite-v1:0", **WHERE)
    assert arns[0] == "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.amazon.nova-lite-v1:0"
    assert set(arns[1:]) == {
        f"arn:aws:bedrock:{r}::foundation-model/amazon.nova-lite-v1:0" for r in GEOGRAPHY_REGIONS["eu"]
    }
    assert len(arns) == len(set(arns))


def test_a_global_profile_adds_the_region_less_model() -> None:
    arns = model_arns("global.anthropic.claude-haiku-4-5-20251001-v1:0", **WHERE)
    assert arns == [
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/global.anthropic.claude-haiku-4-5-20251001-v1:0",
        "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
        "arn:aws:bedrock:::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
    ]


def test_arns_are_taken_as_given() -> None:
    model = "arn:aws:bedrock:us-west-2::foundation-model/amazon.nova-pro-v1:0"
    assert model_arns(model, **WHERE) == [model]
    profile = "arn:aws:bedrock:us-east-2:123456789012:inference-profile/us.amazon.nova-pro-v1:0"
    arns = model_arns(profile, **WHERE)
    assert arns[0] == profile and "arn:aws:bedrock:us-west-2::foundation-model/amazon.nova-pro-v1:0" in arns


def test_no_arn_holds_a_wildcard() -> None:
    for model in ("us.amazon.nova-lite-v1:0", "apac.amazon.nova-lite-v1:0", "global.x.y-v1:0", "amazon.titan-v1"):
        assert not any("*" in arn for arn in model_arns(model, **WHERE))


def test_something_else_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Bedrock model"):
        model_arns("gpt-4.1-mini", **WHERE)
