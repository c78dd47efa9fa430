"""Names of the environment variables the runtime reads.

The CDK stack (``infra/``) imports this module to set them and the runtime (``settings.py``) to read
them, so the two cannot drift apart. Nothing here may import boto3 or anything heavy.
"""

from typing import Final

# Where the runtime runs: "aws" in a deployed stack (set by the stack), "local" on a laptop.
RUNTIME_ENVIRONMENT: Final = "VOICE_AGENT_ENVIRONMENT"

# DynamoDB sessions table, and an endpoint override for DynamoDB Local / moto server.
SESSIONS_TABLE_NAME: Final = "SESSIONS_TABLE_NAME"
DYNAMODB_ENDPOINT_URL: Final = "DYNAMODB_ENDPOINT_URL"

# Public URLs, exactly as Twilio dials them (signatures are computed over these).
# RELAY_PUBLIC_URL: the WebSocket stage URL, e.g. wss://abc.execute-api.us-east-1.amazonaws.com/prod
# WEBHOOK_PUBLIC_URL: the webhook's base URL, e.g. https://xyz.execute-api.us-east-1.amazonaws.com
RELAY_PUBLIC_URL: Final = "RELAY_PUBLIC_URL"
WEBHOOK_PUBLIC_URL: Final = "WEBHOOK_PUBLIC_URL"
# The management (callback) API of the WebSocket stage: https://abc.execute-api.../prod
RELAY_CALLBACK_URL: Final = "RELAY_CALLBACK_URL"

# Secrets: in AWS an ARN of a Secrets Manager secret; locally the plain value.
TWILIO_AUTH_TOKEN_SECRET_ARN: Final = "TWILIO_AUTH_TOKEN_SECRET_ARN"
TWILIO_AUTH_TOKEN: Final = "TWILIO_AUTH_TOKEN"
OPENAI_API_KEY_SECRET_ARN: Final = "OPENAI_API_KEY_SECRET_ARN"
OPENAI_API_KEY: Final = "OPENAI_API_KEY"
OPENAI_BASE_URL: Final = "OPENAI_BASE_URL"
# Override the agent configuration's first model: the provider ("openai" or "bedrock") and the
# model id (a Bedrock model or inference profile id, or an OpenAI model name).
LLM_PROVIDER: Final = "LLM_PROVIDER"
LLM_MODEL: Final = "LLM_MODEL"
# boto3's own variable for a Bedrock endpoint (a Bedrock-compatible server, the local stand-in);
# read by boto3 itself, named here so the local stack and the tests spell it once.
BEDROCK_ENDPOINT_URL: Final = "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"

# Timers (silence, key entry, the call's length) and call-record requests: SQS queue URLs. boto3
# reads its own AWS_ENDPOINT_URL_SQS (the local stack's queue stand-in).
TIMER_QUEUE_URL: Final = "TIMER_QUEUE_URL"
RECORD_QUEUE_URL: Final = "RECORD_QUEUE_URL"
SQS_ENDPOINT_URL: Final = "AWS_ENDPOINT_URL_SQS"
# Where call records go: an S3 bucket and an EventBridge bus in AWS; locally a folder instead of
# both (``<CallSid>.json`` and ``events.jsonl``), refused inside Lambda.
CALL_RECORDS_BUCKET: Final = "CALL_RECORDS_BUCKET"
CALL_EVENTS_BUS: Final = "CALL_EVENTS_BUS"
LOCAL_CALL_RECORDS_DIR: Final = "LOCAL_CALL_RECORDS_DIR"

# The agents folder (agent/loader.py); unset: the one shipped in the package (voice_agent/agents).
# Tests point it at their own agents.
AGENTS_DIR: Final = "AGENTS_DIR"

# "off" disables Twilio signature checks. Honoured only when RUNTIME_ENVIRONMENT is "local".
TWILIO_SIGNATURE_VALIDATION: Final = "TWILIO_SIGNATURE_VALIDATION"

# "true" lets transcript text and full phone numbers into the logs (off by default).
LOG_SENSITIVE_DATA: Final = "LOG_SENSITIVE_DATA"

# Read by Powertools itself.
POWERTOOLS_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
POWERTOOLS_LOG_LEVEL: Final = "POWERTOOLS_LOG_LEVEL"

SERVICE_NAME: Final = "voice-agent"
METRICS_NAMESPACE: Final = "VoiceAgent"
