"""What each finished call leaves behind: its record in S3 and its event on EventBridge, made by the
records function from a queue of requests (``voice_agent/core/call_record.py``).

    /action, /voice, /dial-status, call watch ──► records queue (SQS) ──► records function
                                                      │ 5 attempts           ├─► S3: calls/<day>/<CallSid>.json
                                                      └─► dead-letter queue  └─► EventBridge: <stack>-calls bus,
                                                          (14 days)              "Call Record Created"

The bucket is private (all public access blocked, TLS only, S3-managed encryption), its objects
expire after the agent's transcript retention, and it is kept when the stack is deleted (it holds
transcripts; the lifecycle empties it). A fork routes the event with a rule on the bus.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge
from voice_agent.core.call_record import KEY_PREFIX

RECORDS_TIMEOUT = cdk.Duration.seconds(60)  # a summary by the model takes the longest
# Lambda's advice for an SQS source: a visibility timeout six times the function's timeout.
RECORDS_VISIBILITY = cdk.Duration.seconds(6 * 60)
RECORDS_MAX_RECEIVES = 5  # then the dead-letter queue (local/timers.py uses the same)
DEAD_LETTER_RETENTION = cdk.Duration.days(14)  # SQS's longest: time to fix and redrive


def dead_lettered_queue(
    scope: Construct, construct_id: str, *, visibility: cdk.Duration, max_receives: int
) -> tuple[sqs.Queue, sqs.Queue]:
    """A queue and its dead-letter queue: SQS-managed encryption, TLS only."""
    dead = sqs.Queue(
        scope,
        f"{construct_id}DeadLetters",
        retention_period=DEAD_LETTER_RETENTION,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )
    queue = sqs.Queue(
        scope,
        construct_id,
        visibility_timeout=visibility,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead, max_receive_count=max_receives),
    )
    return queue, dead


def consume(queue: sqs.IQueue, function: lambda_.IFunction) -> None:
    """One message per invocation, failures reported per message (a partial batch response)."""
    function.add_event_source(sources.SqsEventSource(queue, batch_size=1, report_batch_item_failures=True))


class CallRecords(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, retention_days: int, bus_name: str) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="transcript-retention",
                    expiration=cdk.Duration.days(retention_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Only the records function writes here, one object per call; who read a transcript is a job for "
            "CloudTrail data events (opt-in per account), and an access-log bucket would hold its own copy of "
            "every key (every CallSid) under a second retention.",
        )
        self.bus = events.EventBus(self, "Bus", event_bus_name=bus_name)
        self.queue, self.dead_letters = dead_lettered_queue(
            self, "Requests", visibility=RECORDS_VISIBILITY, max_receives=RECORDS_MAX_RECEIVES
        )

    def attach(self, function: lambda_.IFunction) -> None:
        """The records function: fed by the queue; writes objects under ``calls/`` (and reads one
        back when an earlier attempt stored it first) and publishes on the bus. Nothing else."""
        consume(self.queue, function)
        objects = self.bucket.arn_for_objects(f"{KEY_PREFIX}/*")
        function.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:GetObject"], resources=[objects]))
        self.bus.grant_put_events_to(function)
        if function.role is not None:
            stack = cdk.Stack.of(self)
            bucket_id = stack.resolve(stack.get_logical_id(self.bucket.node.default_child))  # type: ignore[arg-type]
            acknowledge(
                function.role,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{KEY_PREFIX}/*]",
                "Object keys are made per call at run time (calls/<day>/<CallSid>.json): the grant names this "
                "bucket and prefix and leaves only the key open.",
            )

    def grant_request(self, function: lambda_.IFunction) -> iam.Grant:
        """Who may ask for a record: the webhook (the end callbacks) and the timers (cut-off calls)."""
        return self.queue.grant_send_messages(function)
