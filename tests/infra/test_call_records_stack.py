"""The call records and the timers, as deployed: the bucket, the bus, the queues and their dead
letters, how the functions are fed, what they may touch, and how long transcripts really live."""

from __future__ import annotations

from typing import Any

from infra import outputs
from infra.constructs.call_records import RECORDS_MAX_RECEIVES
from infra.constructs.timers import TIMERS_MAX_RECEIVES
from infra.stack import RECORDS, TIMERS
from tests.infra import cfn
from tests.infra.conftest import Synthesized
from voice_agent import env_names as names
from voice_agent.agent.config import AGENT
from voice_agent.core.call_record import EVENT_DETAIL_TYPE, EVENT_SOURCE


def _resource(s: Synthesized, construct: Any) -> dict[str, Any]:
    resource: dict[str, Any] = s.template["Resources"][s.logical_id(construct)]
    return resource


def test_the_records_bucket_is_private_encrypted_tls_only_and_expires_with_the_transcripts(
    default: Synthesized,
) -> None:
    bucket = _resource(default, default.stack.call_records.bucket)
    props = bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}  # no ACLs
    (lifecycle,) = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Status"] == "Enabled"
    assert lifecycle["ExpirationInDays"] == AGENT.transcript_retention_days  # as long as the table keeps them
    assert "Prefix" not in lifecycle and "Filter" not in lifecycle  # every object
    assert bucket["DeletionPolicy"] == "Retain"  # transcripts outlive `make destroy`; the lifecycle empties it
    _, policy = cfn.only(default.template, "AWS::S3::BucketPolicy")
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_records_are_announced_on_the_stacks_own_bus(default: Synthesized, options: Synthesized) -> None:
    for s, name in ((default, "VoiceAgent-calls"), (options, "VoiceAgentDev-calls")):
        assert _resource(s, s.stack.call_records.bus)["Properties"]["Name"] == name
        out = s.template["Outputs"][outputs.CALL_EVENTS_BUS]
        assert cfn.refs(out["Value"]) == {s.logical_id(s.stack.call_records.bus)}
        assert f'"{EVENT_SOURCE}"' in out["Description"] and f'"{EVENT_DETAIL_TYPE}"' in out["Description"]
    # No rule: routing is the fork's (the README shows one).
    assert cfn.of_type(default.template, "AWS::Events::Rule") == {}


def _queue(s: Synthesized, queue: Any) -> dict[str, Any]:
    props: dict[str, Any] = _resource(s, queue)["Properties"]
    return props


def test_each_queue_retries_then_keeps_its_failures_in_a_dead_letter_queue(default: Synthesized) -> None:
    st = default.stack
    for queue, dead, max_receives, function in (
        (st.call_records.queue, st.call_records.dead_letters, RECORDS_MAX_RECEIVES, RECORDS),
        (st.timers.queue, st.timers.dead_letters, TIMERS_MAX_RECEIVES, TIMERS),
    ):
        props = _queue(default, queue)
        assert props["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [default.logical_id(dead), "Arn"]},
            "maxReceiveCount": max_receives,
        }
        # Lambda's advice for an SQS source: at least six times the function's timeout.
        assert props["VisibilityTimeout"] >= 6 * function.timeout.to_seconds()
        assert props["SqsManagedSseEnabled"] is True
        assert _queue(default, dead)["MessageRetentionPeriod"] == 14 * 24 * 3600  # SQS's longest
        assert _queue(default, dead)["SqsManagedSseEnabled"] is True
    for policy in cfn.of_type(default.template, "AWS::SQS::QueuePolicy").values():
        (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(cfn.of_type(default.template, "AWS::SQS::QueuePolicy")) == 4


def test_each_queue_feeds_its_function_one_message_at_a_time_with_partial_failures(default: Synthesized) -> None:
    st = default.stack
    mappings = cfn.of_type(default.template, "AWS::Lambda::EventSourceMapping")
    found = {
        (next(iter(cfn.refs(m["Properties"]["FunctionName"]))), next(iter(cfn.refs(m["Properties"]["EventSourceArn"]))))
        for m in mappings.values()
    }
    assert found == {
        (default.logical_id(st.records_fn.function), default.logical_id(st.call_records.queue)),
        (default.logical_id(st.timers_fn.function), default.logical_id(st.timers.queue)),
    }
    for mapping in mappings.values():
        assert mapping["Properties"]["BatchSize"] == 1
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_a_message_in_either_dead_letter_queue_raises_an_alarm(default: Synthesized) -> None:
    alarms = cfn.of_type(default.template, "AWS::CloudWatch::Alarm").values()
    for dead in (default.stack.call_records.dead_letters, default.stack.timers.dead_letters):
        queue_name = {"Fn::GetAtt": [default.logical_id(dead), "QueueName"]}
        assert any(
            a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and a["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]
            and a["Properties"]["Threshold"] == 1
            for a in alarms
        ), dead


def test_the_records_function_may_touch_only_the_records_prefix_and_the_bus(default: Synthesized) -> None:
    role = cfn.function_role(default.template, default.logical_id(default.stack.records_fn.function))
    bucket = default.logical_id(default.stack.call_records.bucket)
    s3 = [
        st
        for r, st in cfn.statements_by_role(default.template)
        if r == role and any("s3:" in a for a in cfn.actions(st))
    ]
    (statement,) = s3
    assert cfn.actions(statement) == {"s3:PutObject", "s3:GetObject"}  # no List, no Delete
    (resource,) = cfn.resources(statement)
    assert cfn.render(resource) == f"{bucket.lower()}-arn/calls/*"
    events = [
        st for r, st in cfn.statements_by_role(default.template) if r == role and "events:PutEvents" in cfn.actions(st)
    ]
    (put,) = events
    assert cfn.refs(put["Resource"]) == {default.logical_id(default.stack.call_records.bus)}


def test_the_records_function_calls_the_model_only_for_an_agent_that_asks(
    default: Synthesized, summarizing: Synthesized
) -> None:
    def bedrock_roles(s: Synthesized) -> set[str]:
        return {
            r for r, st in cfn.statements_by_role(s.template) if any(a.startswith("bedrock:") for a in cfn.actions(st))
        }

    records = cfn.function_role(default.template, default.logical_id(default.stack.records_fn.function))
    assert records not in bedrock_roles(default)
    records = cfn.function_role(summarizing.template, summarizing.logical_id(summarizing.stack.records_fn.function))
    assert records in bedrock_roles(summarizing)
    env = cfn.environment(summarizing.template, summarizing.logical_id(summarizing.stack.records_fn.function))
    assert names.CALL_RECORDS_BUCKET in env


def test_point_in_time_recovery_is_a_choice_and_short_by_default(default: Synthesized, options: Synthesized) -> None:
    """A transcript lives its TTL, up to two days until DynamoDB deletes it, and then the recovery
    window: 7 days by default (was 35), 0 turns it off."""
    table = _resource(default, default.stack.sessions.table)["Properties"]
    assert table["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True,
        "RecoveryPeriodInDays": 7,
    }
    off = _resource(options, options.stack.sessions.table)["Properties"]
    assert off["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
