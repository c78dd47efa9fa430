"""cdk-nag (AwsSolutions) and cfn-lint over the synthesized templates.

cdk-nag already ran inside every fixture's synth (an unacknowledged error makes synth raise), so
these tests pin down *what* is acknowledged, and why, so a new suppression is a visible decision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from cfnlint.api import lint

from tests.infra.conftest import Synthesized

# Every acknowledged cdk-nag finding in the stack (the reasons are in the code, next to the resource):
EXPECTED_ACKNOWLEDGEMENTS = {
    "AwsSolutions-L1",  # python3.13 on purpose: the bundle's wheels are built for it
    "AwsSolutions-SMG4",  # Twilio / OpenAI credentials: rotated at the provider, not by Secrets Manager
    "AwsSolutions-APIG4",  # Twilio cannot send AWS auth; every request is checked by X-Twilio-Signature
    "AwsSolutions-APIG1",  # WebSocket access logs need the account-wide role: opt-in
    "AwsSolutions-IAM5",  # PostToConnection on this API and stage, any connection id (ids are per call);
    # the records function's objects under calls/ of its bucket (keys are per call)
    "AwsSolutions-S1",  # the records bucket: CloudTrail data events audit reads, not an access-log bucket
    "AwsSolutions-SNS2",  # alarm topic (only with alarmEmail): no call data, a CMK would cost while idle
}


def acknowledgements(s: Synthesized) -> dict[str, dict[str, str]]:
    """construct path -> {rule: reason}, as recorded in the cloud assembly."""
    manifest = json.loads((s.outdir / "manifest.json").read_text(encoding="utf-8"))
    artifact = manifest["artifacts"][s.stack.artifact_id]
    metadata: dict[str, list[dict[str, Any]]] = dict(artifact.get("metadata", {}))
    if "additionalMetadataFile" in artifact:
        metadata.update(json.loads((s.outdir / artifact["additionalMetadataFile"]).read_text(encoding="utf-8")))
    found: dict[str, dict[str, str]] = {}
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == "aws:cdk:acknowledged-rules":
                # Stored as "Annotation::<rule>" by aws-cdk-lib; cdk-nag strips the prefix.
                found.setdefault(path, {}).update({k.split("::", 1)[-1]: v for k, v in entry["data"].items()})
    return found


def _rule(rule_id: str) -> str:
    return rule_id.split("[", 1)[0]


@pytest.mark.parametrize("variant", ["default", "options"])
def test_cdk_nag_passes_with_only_the_expected_acknowledgements(variant: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(variant)
    report = s.outdir / "validation-report.json"
    if report.exists():  # written on every synth; on success it carries no failing plugin
        plugins = json.loads(report.read_text(encoding="utf-8")).get("pluginReports", [])
        assert all(p.get("conclusion") != "failure" for p in plugins), plugins
    acknowledged = acknowledgements(s)
    rules = {_rule(rule) for rules in acknowledged.values() for rule in rules}
    expected = EXPECTED_ACKNOWLEDGEMENTS if variant == "options" else EXPECTED_ACKNOWLEDGEMENTS - {"AwsSolutions-SNS2"}
    if variant == "options":
        expected = expected - {"AwsSolutions-APIG1"}  # relay access logs are on there: nothing to acknowledge
        expected = expected | {"AwsSolutions-DDB3"}  # pointInTimeRecoveryDays=0: no recovery window, on purpose
    assert rules == expected
    for path, reasons in acknowledged.items():
        for rule, reason in reasons.items():
            assert len(reason) >= 40, (path, rule)


def test_the_only_wildcards_acknowledged_are_the_connection_id_and_the_record_key(default: Synthesized) -> None:
    wildcards = sorted(
        rule for rules in acknowledgements(default).values() for rule in rules if rule.startswith("AwsSolutions-IAM5")
    )
    bucket = default.logical_id(default.stack.call_records.bucket)
    # PostToConnection: the message and the timers functions; objects: the records function.
    assert len(wildcards) == 3
    assert sum(w.endswith("/prod/*/@connections/*]") for w in wildcards) == 2
    assert f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/calls/*]" in wildcards


def _lint_errors(template: Mapping[str, Any]) -> list[str]:
    matches = lint(json.dumps(template), regions=["us-east-1", "eu-west-1"])
    # Warnings (e.g. W3005, a DependsOn CDK adds that is implied anyway) and infos are not failures.
    return [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]


@pytest.mark.parametrize("variant", ["default", "options", "snap_start", "fallbacks"])
def test_cfn_lint_finds_no_errors(variant: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(variant)
    assert _lint_errors(s.template) == []
