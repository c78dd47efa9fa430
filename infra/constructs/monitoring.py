"""A dashboard of what callers feel and what breaks, and alarms that say when to look.

The agent's own metrics arrive as CloudWatch Embedded Metric Format log lines (no API call, no
latency on the call path), under ``namespace`` with one ``service`` dimension; their names come
from ``voice_agent.metric_names``, the module the runtime emits them with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge
from voice_agent import metric_names as metric

PERIOD = cdk.Duration.minutes(5)


class _MetricMaker(Protocol):
    def __call__(self, *, period: cdk.Duration, statistic: str, label: str) -> cw.Metric: ...


LLM_ERROR_ALARM_COUNT = 3  # in one period: one failed turn is noise, three is a broken key or model


class Monitoring(Construct):
    """Alarms on function errors and throttles, a slow time to first phrase and LLM errors;
    optionally e-mailed through an SNS topic. One dashboard of all of it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        namespace: str,
        service: str,
        functions: Mapping[str, lambda_.IFunction],
        relay_api_id: str,
        relay_stage_name: str,
        webhook_api: apigwv2.HttpApi,
        first_phrase_alarm_ms: int,
        alarm_email: str | None,
        queued_functions: Mapping[str, lambda_.IFunction] | None = None,
        dead_letter_queues: Mapping[str, sqs.IQueue] | None = None,
    ) -> None:
        """``functions`` are alarmed on errors and throttles; ``queued_functions`` (fed by a queue,
        which retries them) are charted, and alarmed through their ``dead_letter_queues``: a
        message there is a record or a timer that failed every attempt."""
        super().__init__(scope, construct_id)
        self._namespace = namespace
        self._service = service
        self._relay_dimensions = {"ApiId": relay_api_id, "Stage": relay_stage_name}

        self.topic: sns.Topic | None = None
        if alarm_email is not None:
            self.topic = sns.Topic(self, "AlarmTopic", display_name="Voice agent alarms", enforce_ssl=True)
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
            acknowledge(
                self.topic,
                "AwsSolutions-SNS2",
                "Alarm notifications carry only an alarm name and state, no call data. CloudWatch cannot "
                "publish to a topic encrypted with the AWS-managed SNS key, and a customer-managed KMS key "
                "costs $1/month, which would break 'nothing to pay while idle'.",
            )

        self.alarms: list[cw.Alarm] = []
        for label, function in functions.items():
            self._alarm(
                f"{label}Errors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                threshold=1,
                description=f"The {label.lower()} function failed: an unhandled error, a timeout or a failed start.",
            )
            self._alarm(
                f"{label}Throttles",
                function.metric_throttles(period=PERIOD, statistic="Sum"),
                threshold=1,
                description=f"Lambda refused to run the {label.lower()} function: the concurrency limit was reached.",
            )
        self.first_phrase_alarm = self._alarm(
            "SlowFirstPhrase",
            self._agent_metric(metric.TIME_TO_FIRST_PHRASE, "p90"),
            threshold=first_phrase_alarm_ms,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            description=(
                f"Callers wait too long: the 90th percentile of time to first phrase was above "
                f"{first_phrase_alarm_ms} ms in two of the last three 5-minute periods (usually the LLM)."
            ),
        )
        for label, queue in (dead_letter_queues or {}).items():
            self._alarm(
                f"{label}DeadLetters",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                threshold=1,
                description=(
                    f"A {label.lower()} request failed every attempt and waits in its dead-letter queue "
                    "(docs/deploy.md says how to redrive it once the cause is fixed)."
                ),
            )
        self._alarm(
            "LlmErrors",
            self._agent_metric(metric.LLM_ERRORS, "Sum"),
            threshold=LLM_ERROR_ALARM_COUNT,
            description="Turns are failing at the language model (a wrong or placeholder key, a quota, an outage).",
        )

        if self.topic is not None:
            self._let_alarms_publish(self.topic)

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(3))
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=3),
        )
        self.dashboard.add_widgets(*self._agent_widgets(first_phrase_alarm_ms))
        self.dashboard.add_widgets(*self._after_call_widgets(dead_letter_queues or {}))
        self.dashboard.add_widgets(*self._function_widgets({**functions, **(queued_functions or {})}))
        self.dashboard.add_widgets(*self._api_widgets(webhook_api))

    def _let_alarms_publish(self, topic: sns.Topic) -> None:
        """With ``enforce_ssl`` the topic gets a policy of its own, holding only the Deny of
        insecure transport, and that policy replaces SNS's default one, whose Allow is what lets
        CloudWatch publish: without this statement every alarm e-mail is silently dropped. Scoped
        to this account and to exactly this stack's alarms (the confused-deputy conditions)."""
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account},
                    "ArnLike": {"aws:SourceArn": [alarm.alarm_arn for alarm in self.alarms]},
                },
            )
        )

    def _alarm(
        self,
        name: str,
        watched: cw.IMetric,
        *,
        threshold: float,
        description: str,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int = 1,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            name,
            metric=watched,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            # No calls means no data, and no data is fine.
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        if self.topic is not None:
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        self.alarms.append(alarm)
        return alarm

    def _agent_metric(self, name: str, statistic: str, label: str | None = None) -> cw.Metric:
        return cw.Metric(
            namespace=self._namespace,
            metric_name=name,
            dimensions_map={metric.SERVICE_DIMENSION: self._service},
            statistic=statistic,
            period=PERIOD,
            label=label,  # alarms pass none: a labelled metric would render as metric math
        )

    def _relay_metric(self, name: str, statistic: str = "Sum") -> cw.Metric:
        return cw.Metric(
            namespace="AWS/ApiGateway",
            metric_name=name,
            dimensions_map=self._relay_dimensions,
            statistic=statistic,
            period=PERIOD,
            label=name,
        )

    def _agent_widgets(self, first_phrase_alarm_ms: int) -> Sequence[cw.IWidget]:
        m = self._agent_metric
        return [
            cw.GraphWidget(
                title="Time to first phrase (ms): what callers feel",
                left=[m(metric.TIME_TO_FIRST_PHRASE, s, s) for s in ("p50", "p90", "p99")],
                left_annotations=[cw.HorizontalAnnotation(value=first_phrase_alarm_ms, label="p90 alarm")],
                width=8,
            ),
            cw.GraphWidget(
                title="Turn duration (ms)",
                left=[m(metric.TURN_DURATION, s, s) for s in ("p50", "p90", "Maximum")],
                width=8,
            ),
            cw.GraphWidget(
                title="Turns and call events",
                left=[
                    m(n, "Sum", n)
                    for n in (metric.TURNS, metric.INTERRUPTS, metric.HANDOFFS, metric.RECONNECTS, metric.TRANSFERS)
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Failed or cut-short turns",
                left=[
                    m(n, "Sum", n)
                    for n in (
                        metric.LLM_ERRORS,
                        metric.STORE_ERRORS,
                        metric.TURNS_CUT_SHORT,
                        metric.TRANSFERS_FAILED,
                        metric.REFUSED_SIGNATURES,
                        metric.REFUSED_SETUPS,
                    )
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Speech providers: Twilio's switches and refused configurations",
                left=[m(n, "Sum", n) for n in (metric.CONFIG_UPDATES, metric.CONFIGURATION_ERRORS)],
                width=8,
            ),
            cw.GraphWidget(
                title="Posts per reply and tool calls",
                left=[m(metric.POSTS_PER_REPLY, "Average", "PostsPerReply avg")],
                right=[m(metric.TOOL_CALLS, "Sum", "ToolCalls")],
                width=8,
            ),
            cw.GraphWidget(
                title="Model: fallbacks and tokens",
                left=[m(metric.LLM_FALLBACKS, "Sum", metric.LLM_FALLBACKS)],
                right=[m(n, "Sum", n) for n in (metric.LLM_INPUT_TOKENS, metric.LLM_OUTPUT_TOKENS)],
                width=8,
            ),
            cw.GraphWidget(
                title="Relay WebSocket",
                left=[self._relay_metric(n) for n in ("ConnectCount", "MessageCount")],
                right=[self._relay_metric(n) for n in ("ClientError", "IntegrationError", "ExecutionError")],
                width=8,
            ),
        ]

    def _after_call_widgets(self, dead_letter_queues: Mapping[str, sqs.IQueue]) -> Sequence[cw.IWidget]:
        m = self._agent_metric
        return [
            cw.GraphWidget(
                title="Call records",
                left=[m(n, "Sum", n) for n in (metric.CALL_RECORDS, metric.CALL_RECORD_FAILURES, metric.CUT_OFF_CALLS)],
                right=[
                    q.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label=f"{label} dead letters"
                    )
                    for label, q in dead_letter_queues.items()
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Silence and the time limit",
                left=[
                    m(n, "Sum", n)
                    for n in (metric.SILENCE_REMINDERS, metric.SILENCE_HANGUPS, metric.TIME_LIMIT_HANGUPS)
                ],
                width=12,
            ),
        ]

    def _function_widgets(self, functions: Mapping[str, lambda_.IFunction]) -> Sequence[cw.IWidget]:
        def per_function(
            title: str, statistic: str, pick: Callable[[lambda_.IFunction], _MetricMaker]
        ) -> cw.GraphWidget:
            left = [pick(fn)(period=PERIOD, statistic=statistic, label=label) for label, fn in functions.items()]
            return cw.GraphWidget(title=title, left=left, width=6)

        return [
            per_function("Invocations", "Sum", lambda fn: fn.metric_invocations),
            per_function("Errors", "Sum", lambda fn: fn.metric_errors),
            per_function("Duration p90 (ms)", "p90", lambda fn: fn.metric_duration),
            per_function("Throttles", "Sum", lambda fn: fn.metric_throttles),
        ]

    def _api_widgets(self, webhook_api: apigwv2.HttpApi) -> Sequence[cw.IWidget]:
        return [
            cw.GraphWidget(
                title="Webhook requests",
                left=[
                    webhook_api.metric_count(period=PERIOD, label="requests"),
                    webhook_api.metric_client_error(period=PERIOD, label="4xx"),
                    webhook_api.metric_server_error(period=PERIOD, label="5xx"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Webhook latency (ms)",
                left=[webhook_api.metric_latency(period=PERIOD, statistic=s, label=s) for s in ("p50", "p90")],
                width=12,
            ),
        ]
