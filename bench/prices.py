"""Every price the cost model uses, in one place: update them here (a fork in another region, or
when AWS, Twilio or your model provider changes a price) and run ``make cost``.

AWS list prices for us-east-1 in USD as of November 2026, some of them read from secondary
summaries rather than AWS's own pages: re-check them on the pricing pages before quoting a
figure. Those pages are https://aws.amazon.com/api-gateway/pricing/,
https://aws.amazon.com/lambda/pricing/, https://aws.amazon.com/dynamodb/pricing/on-demand/,
https://aws.amazon.com/cloudwatch/pricing/ and https://aws.amazon.com/secrets-manager/pricing/.
Free tiers are ignored (they end, and a busy number leaves them quickly). Twilio's and the
models' prices are examples for scale, not quotes. What these prices add up to per 1,000
call-minutes: ``docs/deploy.md``, "7. What it costs".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prices:
    # API Gateway WebSocket: messages both ways, metered in 32 KB units; connection minutes.
    websocket_message_per_million: float = 1.00
    websocket_connection_minute_per_million: float = 0.25
    # API Gateway HTTP API (the webhook): per request.
    http_api_request_per_million: float = 1.00
    # Lambda on arm64: per request and per GB-second (init phase included, 1 ms granularity).
    lambda_request_per_million: float = 0.20
    lambda_arm64_per_gb_second: float = 0.0000133334
    # DynamoDB on-demand: per write unit (1 KB) and read unit (4 KB, strongly consistent).
    dynamodb_write_unit_per_million: float = 0.625
    dynamodb_read_unit_per_million: float = 0.125
    # CloudWatch Logs ingestion, Standard class (the first tier of Lambda's tiered logs price).
    logs_ingestion_per_gb: float = 0.50
    # Secrets Manager API calls (each function reads its secret once per cold start).
    secrets_manager_per_10k_calls: float = 0.05
    # After the call (https://aws.amazon.com/sqs/pricing/, https://aws.amazon.com/s3/pricing/,
    # https://aws.amazon.com/eventbridge/pricing/): SQS standard requests (64 KB chunks), S3
    # Standard PUTs and storage, EventBridge custom events (64 KB chunks).
    sqs_request_per_million: float = 0.40
    s3_put_per_thousand: float = 0.005
    s3_storage_per_gb_month: float = 0.023
    eventbridge_event_per_million: float = 1.00

    # -- outside AWS, per call-minute, for scale ------------------------------------------------
    # ConversationRelay: about $0.07/min, community-cited; confirm on twilio.com/voice/pricing.
    twilio_conversation_relay_per_minute: float = 0.07
    # Inbound voice on a US local number (toll-free and outbound cost more).
    twilio_inbound_voice_per_minute: float = 0.0085
    # Model prices per million tokens, on-demand (check your provider's page; docs/models.md says
    # where these come from). The template's default, Amazon Nova Lite on Bedrock (us-east-1; the
    # US inference profile bills at the source Region's price), then a larger Bedrock model, then
    # OpenAI's: the default with LLM_PROVIDER=openai, and a large model for scale.
    bedrock_nova_lite_input_per_million: float = 0.06
    bedrock_nova_lite_output_per_million: float = 0.24
    bedrock_claude_haiku_input_per_million: float = 1.00
    bedrock_claude_haiku_output_per_million: float = 5.00
    openai_mini_input_per_million: float = 0.40
    openai_mini_output_per_million: float = 1.60
    llm_large_input_per_million: float = 2.50
    llm_large_output_per_million: float = 10.00
    # Secrets Manager, per secret and month (an idle cost: the OpenAI key's secret exists only
    # when an OpenAI model is configured).
    secrets_manager_per_secret_month: float = 0.40


PRICES = Prices()
