"""Names of the stack's outputs: the stack sets them, the CLI tools read them from
``cdk-outputs.json`` (written by ``make deploy``)."""

from typing import Final

WEBHOOK_VOICE_URL: Final = "WebhookVoiceUrl"  # paste into the Twilio number's "A call comes in"
WEBHOOK_BASE_URL: Final = "WebhookBaseUrl"
RELAY_URL: Final = "RelayUrl"  # wss://..., the URL ConversationRelay dials (and signs)
DASHBOARD_URL: Final = "DashboardUrl"
TWILIO_AUTH_TOKEN_SECRET_ARN: Final = "TwilioAuthTokenSecretArn"  # noqa: S105 - an output's name
OPENAI_API_KEY_SECRET_ARN: Final = "OpenAiApiKeySecretArn"  # noqa: S105 - only with an OpenAI model
LLM_MODELS: Final = "LlmModels"  # the model chain, e.g. "bedrock:us.amazon.nova-lite-v1:0"
SESSIONS_TABLE_NAME: Final = "SessionsTableName"
MESSAGE_LOG_GROUP: Final = "MessageLogGroup"
WEBHOOK_LOG_GROUP: Final = "WebhookLogGroup"
CONNECT_LOG_GROUP: Final = "ConnectLogGroup"
RELAY_DOMAIN_TARGET: Final = "RelayDomainTarget"  # only with a custom domain: the DNS CNAME target
WEBHOOK_DOMAIN_TARGET: Final = "WebhookDomainTarget"
# Each call's record (S3), its event (EventBridge), the requests that failed every attempt, and the
# two functions behind them. `make smoke` checks that the scripted call's record arrives in the
# bucket (and says the check was skipped against a stack without one).
CALL_RECORDS_BUCKET: Final = "CallRecordsBucketName"
CALL_EVENTS_BUS: Final = "CallEventsBusName"
CALL_RECORDS_DEAD_LETTER_QUEUE: Final = "CallRecordsDeadLetterQueueUrl"
RECORDS_LOG_GROUP: Final = "RecordsLogGroup"
TIMERS_LOG_GROUP: Final = "TimersLogGroup"
