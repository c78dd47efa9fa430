"""The voice agent's stack: read it top to bottom like the architecture diagram.

    Twilio ── POST /voice, /action ──► Webhook (HTTP API) ──► webhook function ──┐
    Twilio ── WebSocket ─────────────► Relay (WebSocket API)                     ├─► Sessions (DynamoDB)
                 $connect ──► connect function (checks the Twilio signature)      │
                 $default ──► message function ── LLM ── PostToConnection ───────┤
                              (Bedrock by IAM, or OpenAI with a key in Secrets Manager)
                 $disconnect ► disconnect function ───────────────────────────────┘
    message function ── timers queue (SQS delays) ──► timers function (reminders, key pauses, watch)
    webhook function ── records queue ──► records function ──► S3 (records) + EventBridge (events)

Every function runs the same code asset (``functions/voice_agent`` and its locked dependencies)
with a different entry point; each gets only the environment and permissions its job needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import outputs
from infra.bundling import runtime_code
from infra.config import ConfigError, StackConfig
from infra.constructs.agent_function import AgentFunction
from infra.constructs.call_records import RECORDS_TIMEOUT, CallRecords
from infra.constructs.model_access import ModelAccess
from infra.constructs.monitoring import Monitoring
from infra.constructs.provider_secret import ProviderSecret
from infra.constructs.relay_api import RelayApi
from infra.constructs.sessions_table import SessionsTable
from infra.constructs.timers import TIMERS_TIMEOUT, Timers
from infra.constructs.webhook_api import WebhookApi
from infra.permissions import (
    CONNECT_STORE_ACTIONS,
    DISCONNECT_STORE_ACTIONS,
    MESSAGE_STORE_ACTIONS,
    RECORDS_STORE_ACTIONS,
    TIMERS_STORE_ACTIONS,
    WEBHOOK_STORE_ACTIONS,
)
from voice_agent import env_names as names
from voice_agent.agent.config import AGENT, AgentConfig
from voice_agent.core.call_record import EVENT_DETAIL_TYPE, EVENT_SOURCE
from voice_agent.core.routing import Agents
from voice_agent.model_choice import ModelRef, model_problems, providers


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    handler: str
    memory_mb: int
    timeout: cdk.Duration
    description: str


# Memory buys CPU on Lambda (1,769 MB = one vCPU), and CPU is what a cold start spends importing.
CONNECT = FunctionSpec(
    handler="voice_agent.entry.ws_connect.handler",
    # The caller hears silence until the upgrade is accepted: enough CPU for a quick cold start
    # (boto3 + the signature check), no more.
    memory_mb=512,
    timeout=cdk.Duration.seconds(10),
    description="Relay $connect: accepts the WebSocket upgrade only when Twilio signed it, for the call it names",
)
MESSAGE = FunctionSpec(
    handler="voice_agent.entry.ws_message.handler",
    # Streams one LLM reply per turn. 1 GB roughly halves the cold import of openai + boto3 against
    # 512 MB; at 4 turns a minute of ~3 s each that is ~$0.00016 per call-minute, noise next to
    # Twilio. The runtime stops a turn at 25 s (its budget); API Gateway gives up on the route at
    # 29 s, so a longer timeout would only bill for work nobody waits for. 28 s leaves the turn's
    # last store writes room while still ending before the gateway does.
    memory_mb=1024,
    timeout=cdk.Duration.seconds(28),
    description="Relay $default: every ConversationRelay message; streams the LLM reply to the call",
)
DISCONNECT = FunctionSpec(
    handler="voice_agent.entry.ws_disconnect.handler",
    memory_mb=256,  # nobody waits on it: one DynamoDB update
    timeout=cdk.Duration.seconds(10),
    description="Relay $disconnect: marks the connection closed",
)
TIMERS = FunctionSpec(
    handler="voice_agent.entry.silence_timer.handler",
    # Usually one conditional write and one post; a key entry that ends on a timer runs a turn.
    memory_mb=512,
    timeout=TIMERS_TIMEOUT,
    description="Timers: silence reminders, key-entry pauses, the hang-up after them, the call watch",
)
RECORDS = FunctionSpec(
    handler="voice_agent.entry.record_builder.handler",
    memory_mb=512,  # after the call: nobody waits on it
    timeout=RECORDS_TIMEOUT,
    description="Call records: one JSON document per call into S3, one event on EventBridge",
)
WEBHOOK = FunctionSpec(
    handler="voice_agent.entry.webhook.handler",
    # Twilio waits for the TwiML before the call connects (FastAPI + Mangum + boto3 cold start).
    memory_mb=512,
    timeout=cdk.Duration.seconds(10),
    description="Webhook: answers Twilio's /voice and /action with TwiML",
)


class VoiceAgentStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        agent: AgentConfig | None = None,
        agents: Agents | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Voice agent: Twilio ConversationRelay on API Gateway WebSocket, Lambda and DynamoDB",
            **kwargs,
        )
        self.config = config
        # The models the runtime will call: the agent configuration's chain with the deployment's
        # llmProvider / llmModel in front, resolved as the runtime resolves it (model_choice).
        # Every agent's (agents folder): the role may call each of them.
        self.model_chain = _models_of([agent or AGENT, *(agents.by_name.values() if agents else ())], config)
        uses = providers(self.model_chain)
        if config.openai_base_url is not None and "openai" not in uses:
            raise ConfigError("openaiBaseUrl is set but no model of the chain is an OpenAI one (llmProvider=openai?)")
        code = runtime_code()

        # State and credentials.
        self.sessions = SessionsTable(
            self,
            "Sessions",
            retain=config.retain_table,
            deletion_protection=config.table_deletion_protection,
            recovery_days=config.point_in_time_recovery_days,
        )
        self.agent = agent or AGENT
        # After and around the call: timers, and each call's record and event.
        self.timers = Timers(self, "TimerQueue")
        self.call_records = CallRecords(
            self,
            "CallRecords",
            retention_days=self.agent.transcript_retention_days,
            bus_name=f"{config.stack_name}-calls",
        )
        self.twilio_auth_token = ProviderSecret(
            self, "TwilioAuthToken", description="Twilio auth token: checks X-Twilio-Signature on every request"
        )
        # Bedrock needs no key (IAM); the OpenAI key's secret exists only if an OpenAI model does.
        self.openai_api_key: ProviderSecret | None = None
        if "openai" in uses:
            self.openai_api_key = ProviderSecret(
                self, "OpenAiApiKey", description="API key for the OpenAI-compatible language model"
            )

        # The two public doors. Their URLs exist before the functions that need them.
        self.relay = RelayApi(
            self,
            "Relay",
            stage_name=config.stage_name,
            rate_limit=config.relay_rate_limit,
            burst_limit=config.relay_burst_limit,
            access_logs=config.relay_access_logs,
            log_retention_days=config.log_retention_days,
            domain_name=config.relay_domain_name,
            base_path=config.relay_base_path,
            certificate_arn=config.certificate_arn,
        )
        self.webhook_api = WebhookApi(
            self,
            "Webhook",
            rate_limit=config.webhook_rate_limit,
            burst_limit=config.webhook_burst_limit,
            log_retention_days=config.log_retention_days,
            domain_name=config.webhook_domain_name,
            certificate_arn=config.certificate_arn,
        )

        # The functions, each with only the settings its entry point reads.
        table_name = self.sessions.table.table_name  # (Connect notes each socket's call in it)
        timer_queue = self.timers.queue.queue_url
        record_queue = self.call_records.queue.queue_url
        model_settings: dict[str, str] = {
            **(
                {names.OPENAI_API_KEY_SECRET_ARN: self.openai_api_key.secret.secret_arn}
                if self.openai_api_key is not None
                else {}
            ),
            **_optional(names.OPENAI_BASE_URL, config.openai_base_url),
            **_optional(names.LLM_PROVIDER, config.llm_provider),
            **_optional(names.LLM_MODEL, config.llm_model),
        }
        self.connect_fn = self._function(
            "Connect",
            CONNECT,
            code,
            {
                names.SESSIONS_TABLE_NAME: table_name,
                names.RELAY_PUBLIC_URL: self.relay.public_url,
                names.TWILIO_AUTH_TOKEN_SECRET_ARN: self.twilio_auth_token.secret.secret_arn,
            },
        )
        self.message_fn = self._function(
            "Message",
            MESSAGE,
            code,
            {
                names.SESSIONS_TABLE_NAME: table_name,
                names.RELAY_CALLBACK_URL: self.relay.callback_url,
                names.TIMER_QUEUE_URL: timer_queue,
                **model_settings,
            },
            reserved_concurrency=config.reserved_concurrency,
            snap_start=config.message_function_snap_start,
        )
        self.disconnect_fn = self._function("Disconnect", DISCONNECT, code, {names.SESSIONS_TABLE_NAME: table_name})
        self.webhook_fn = self._function(
            "WebhookHandler",
            WEBHOOK,
            code,
            {
                names.SESSIONS_TABLE_NAME: table_name,
                names.WEBHOOK_PUBLIC_URL: self.webhook_api.base_url,
                names.RELAY_PUBLIC_URL: self.relay.public_url,
                names.TWILIO_AUTH_TOKEN_SECRET_ARN: self.twilio_auth_token.secret.secret_arn,
                names.RECORD_QUEUE_URL: record_queue,
            },
        )
        # Wiring: routes, then permissions, each granted only to the functions that need it.
        self.message_target = self._message_target()
        self.relay.route(
            connect=self.connect_fn.function, message=self.message_target, disconnect=self.disconnect_fn.function
        )
        self.webhook_api.route(self.webhook_fn.function)
        self.sessions.grant_session_store(self.message_fn.function, MESSAGE_STORE_ACTIONS)
        self.sessions.grant_session_store(self.webhook_fn.function, WEBHOOK_STORE_ACTIONS)
        self.sessions.grant_session_store(self.disconnect_fn.function, DISCONNECT_STORE_ACTIONS)
        self.sessions.grant_session_store(self.connect_fn.function, CONNECT_STORE_ACTIONS)
        for needs_twilio in (self.connect_fn, self.webhook_fn):
            self.twilio_auth_token.grant_get_value(needs_twilio.function)
        self._queued_functions(code, model_settings)
        self._grant_models()
        self.relay.grant_manage_connections(self.message_fn.function)
        self.timers.grant_schedule(self.message_fn.function)

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            namespace=config.metrics_namespace,
            service=names.SERVICE_NAME,
            functions={
                "Connect": self.connect_fn.function,
                "Message": self.message_fn.function,
                "Disconnect": self.disconnect_fn.function,
                "Webhook": self.webhook_fn.function,
            },
            queued_functions={"Timers": self.timers_fn.function, "Records": self.records_fn.function},
            dead_letter_queues={
                "Records": self.call_records.dead_letters,
                "Timers": self.timers.dead_letters,
            },
            relay_api_id=self.relay.api.api_id,
            relay_stage_name=self.relay.stage.stage_name,
            webhook_api=self.webhook_api.api,
            first_phrase_alarm_ms=config.first_phrase_alarm_ms,
            alarm_email=config.alarm_email,
        )
        self._outputs()
        cdk.Tags.of(self).add("project", "voice-agent")

    def _queued_functions(self, code: lambda_.Code, model_settings: Mapping[str, str]) -> None:
        """The timers and records functions, each fed by its queue (after and around the call)."""
        table_name = self.sessions.table.table_name  # (Connect notes each socket's call in it)
        timer_queue, record_queue = self.timers.queue.queue_url, self.call_records.queue.queue_url
        # A key entry that ends on a timer runs a turn: the message function's model settings.
        self.timers_fn = self._function(
            "Timers",
            TIMERS,
            code,
            {
                names.SESSIONS_TABLE_NAME: table_name,
                names.RELAY_CALLBACK_URL: self.relay.callback_url,
                names.TIMER_QUEUE_URL: timer_queue,
                names.RECORD_QUEUE_URL: record_queue,
                **model_settings,
            },
        )
        self.records_uses_model = self.agent.call_record.uses_model
        self.records_fn = self._function(
            "Records",
            RECORDS,
            code,
            {
                names.SESSIONS_TABLE_NAME: table_name,
                names.CALL_RECORDS_BUCKET: self.call_records.bucket.bucket_name,
                names.CALL_EVENTS_BUS: self.call_records.bus.event_bus_name,
                **(model_settings if self.records_uses_model else {}),
            },
        )
        self.sessions.grant_session_store(self.timers_fn.function, TIMERS_STORE_ACTIONS)
        self.sessions.grant_session_store(self.records_fn.function, RECORDS_STORE_ACTIONS)
        self.relay.grant_manage_connections(self.timers_fn.function)
        self.timers.grant_schedule(self.timers_fn.function)  # the next reminder, the watch's next look
        self.timers.attach(self.timers_fn.function)
        self.call_records.grant_request(self.webhook_fn.function)
        self.call_records.grant_request(self.timers_fn.function)  # a call the watch found cut off
        self.call_records.attach(self.records_fn.function)

    def _grant_models(self) -> None:
        """The model's key and Bedrock models: to the message function, the timers function (a key
        entry's turn) and, only when the agent asks for a summary or fields, the records function."""
        thinkers = [self.message_fn, self.timers_fn] + ([self.records_fn] if self.records_uses_model else [])
        if self.openai_api_key is not None:
            for thinker in thinkers:
                self.openai_api_key.grant_get_value(thinker.function)
        self.model_access: ModelAccess | None = None
        self.model_accesses: list[ModelAccess] = []
        bedrock_models = [m.model for m in self.model_chain if m.provider == "bedrock"]
        if bedrock_models:
            self.model_accesses = [
                ModelAccess(
                    self, "ModelAccess" if t is self.message_fn else f"{t.node.id}ModelAccess", role=t.role,
                    models=bedrock_models,
                )
                for t in thinkers
            ]  # fmt: skip
            self.model_access = self.model_accesses[0]

    def _function(
        self,
        construct_id: str,
        spec: FunctionSpec,
        code: lambda_.Code,
        environment: Mapping[str, str],
        *,
        reserved_concurrency: int | None = None,
        snap_start: bool = False,
    ) -> AgentFunction:
        common = {
            names.RUNTIME_ENVIRONMENT: "aws",
            names.POWERTOOLS_SERVICE_NAME: names.SERVICE_NAME,
            names.POWERTOOLS_METRICS_NAMESPACE: self.config.metrics_namespace,
            names.POWERTOOLS_LOG_LEVEL: "INFO",
        }
        return AgentFunction(
            self,
            construct_id,
            code=code,
            handler=spec.handler,
            description=spec.description,
            memory_mb=spec.memory_mb,
            timeout=spec.timeout,
            environment={**common, **environment},
            log_retention_days=self.config.log_retention_days,
            reserved_concurrency=reserved_concurrency,
            snap_start=snap_start,
        )

    def _message_target(self) -> lambda_.IFunction:
        """The function, or a ``live`` alias on its current version when it is kept warm
        (SnapStart and provisioned concurrency only work on published versions)."""
        if not self.config.keeps_message_function_warm:
            return self.message_fn.function
        provisioned = self.config.message_function_provisioned_concurrency
        return lambda_.Alias(
            self,
            "MessageLive",
            alias_name="live",
            version=self.message_fn.function.current_version,
            provisioned_concurrent_executions=provisioned or None,
        )

    def _outputs(self) -> None:
        def output(name: str, value: str, description: str) -> None:
            cdk.CfnOutput(self, name, value=value, description=description)

        output(
            outputs.WEBHOOK_VOICE_URL,
            self.webhook_api.voice_url,
            "Twilio number > Voice > 'A call comes in': Webhook, HTTP POST, this URL",
        )
        output(outputs.WEBHOOK_BASE_URL, self.webhook_api.base_url, "The webhook's base URL (signatures use it)")
        output(outputs.RELAY_URL, self.relay.public_url, "The WebSocket URL ConversationRelay connects to")
        output(
            outputs.DASHBOARD_URL,
            f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#dashboards:name={self.monitoring.dashboard.dashboard_name}",
            "CloudWatch dashboard of the agent",
        )
        output(
            outputs.TWILIO_AUTH_TOKEN_SECRET_ARN,
            self.twilio_auth_token.secret.secret_arn,
            "Put your Twilio auth token here: aws secretsmanager put-secret-value --secret-id <this>",
        )
        if self.openai_api_key is not None:
            output(
                outputs.OPENAI_API_KEY_SECRET_ARN,
                self.openai_api_key.secret.secret_arn,
                "Put your LLM API key here: aws secretsmanager put-secret-value --secret-id <this>",
            )
        output(outputs.LLM_MODELS, " ".join(str(m) for m in self.model_chain), "The models a turn tries, in order")
        output(outputs.SESSIONS_TABLE_NAME, self.sessions.table.table_name, "DynamoDB sessions table (kept on destroy)")
        output(
            outputs.CALL_RECORDS_BUCKET,
            self.call_records.bucket.bucket_name,
            "Each call's record: s3://<this>/calls/<YYYY-MM-DD>/<CallSid>.json (kept on destroy)",
        )
        output(
            outputs.CALL_EVENTS_BUS,
            self.call_records.bus.event_bus_name,
            f'Each record\'s event: source "{EVENT_SOURCE}", detail-type "{EVENT_DETAIL_TYPE}"; add a rule here',
        )
        output(
            outputs.CALL_RECORDS_DEAD_LETTER_QUEUE,
            self.call_records.dead_letters.queue_url,
            "Record requests that failed every attempt (alarmed); redrive them once the cause is fixed",
        )
        output(outputs.RECORDS_LOG_GROUP, self.records_fn.log_group.log_group_name, "aws logs tail <this> --follow")
        output(outputs.TIMERS_LOG_GROUP, self.timers_fn.log_group.log_group_name, "aws logs tail <this> --follow")
        output(outputs.MESSAGE_LOG_GROUP, self.message_fn.log_group.log_group_name, "aws logs tail <this> --follow")
        output(outputs.WEBHOOK_LOG_GROUP, self.webhook_fn.log_group.log_group_name, "aws logs tail <this> --follow")
        output(outputs.CONNECT_LOG_GROUP, self.connect_fn.log_group.log_group_name, "aws logs tail <this> --follow")
        if self.relay.domain is not None:
            output(
                outputs.RELAY_DOMAIN_TARGET,
                self.relay.domain.regional_domain_name,
                "DNS: CNAME the relay domain to this",
            )
        if self.webhook_api.domain is not None:
            output(
                outputs.WEBHOOK_DOMAIN_TARGET,
                self.webhook_api.domain.regional_domain_name,
                "DNS: CNAME the webhook domain to this",
            )


def _optional(name: str, value: str | None) -> dict[str, str]:
    return {name: value} if value is not None else {}


def _models_of(agents: list[AgentConfig], config: StackConfig) -> tuple[ModelRef, ...]:
    """Every model any agent's turn may try, each once, the default agent's chain first."""
    return tuple(dict.fromkeys(ref for a in agents for ref in _model_chain(a, config)))


def _model_chain(agent: AgentConfig, config: StackConfig) -> tuple[ModelRef, ...]:
    try:
        chain = agent.llm_chain(config.llm_provider, config.llm_model)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    problems = [problem for ref in chain for problem in model_problems(ref)]
    if problems:
        raise ConfigError("invalid model chain:\n- " + "\n- ".join(problems))
    return chain
