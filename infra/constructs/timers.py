"""The timer queue: silence reminders, key-entry pauses, the hang-up after a timer's line, and the
call watch (``voice_agent/core/silence.py``). A timer is a message with an SQS delay (at most 15
minutes; the watch chains them), so no Lambda waits idle; the timers function fires it.

    message function (after `last`, at setup) ──► timers queue ──► timers function ──► PostToConnection
    timers function (next reminder, watch)   ──►     │ 3 attempts                 └─► records queue (cut off)
                                                     └─► dead-letter queue
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constructs.call_records import consume, dead_lettered_queue

TIMERS_TIMEOUT = cdk.Duration.seconds(28)  # a key entry that ends on a timer runs one turn
TIMERS_VISIBILITY = cdk.Duration.seconds(6 * 28)
TIMERS_MAX_RECEIVES = 3  # a timer retried later than that is worth nothing


class Timers(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.queue, self.dead_letters = dead_lettered_queue(
            self, "Queue", visibility=TIMERS_VISIBILITY, max_receives=TIMERS_MAX_RECEIVES
        )

    def attach(self, function: lambda_.IFunction) -> None:
        consume(self.queue, function)

    def grant_schedule(self, function: lambda_.IFunction) -> iam.Grant:
        return self.queue.grant_send_messages(function)
