"""Names of the CloudWatch metrics the runtime emits (Embedded Metric Format).

The runtime (``telemetry.py``) emits them and the CDK stack (``infra/``) charts and alarms on them,
so both import these names from here. Nothing here may import boto3 or anything heavy.
"""

from typing import Final

# Every metric carries this one dimension (Powertools adds it), valued POWERTOOLS_SERVICE_NAME.
SERVICE_DIMENSION: Final = "service"

# Per turn (the message function).
TURNS: Final = "Turns"
TURN_DURATION: Final = "TurnDuration"  # milliseconds
TIME_TO_FIRST_PHRASE: Final = "TimeToFirstPhrase"  # milliseconds
POSTS_PER_REPLY: Final = "PostsPerReply"
LLM_ERRORS: Final = "LLMErrors"
LLM_FALLBACKS: Final = "LLMFallbacks"  # a model failed before its first word; the next one took the turn
LLM_INPUT_TOKENS: Final = "LLMInputTokens"  # as the provider billed them (Bedrock reports every request)
LLM_OUTPUT_TOKENS: Final = "LLMOutputTokens"
STORE_ERRORS: Final = "StoreErrors"
TURNS_CUT_SHORT: Final = "TurnsCutShort"
HANDOFFS: Final = "Handoffs"
TOOL_CALLS: Final = "ToolCalls"
INTERRUPTS: Final = "Interrupts"

# Per call (the webhook): a fresh <Connect> after a dropped socket, transfers to a person (and
# those no one answered), and requests refused for a missing or forged signature.
RECONNECTS: Final = "Reconnects"
TRANSFERS: Final = "Transfers"
TRANSFERS_FAILED: Final = "TransfersFailed"
REFUSED_SIGNATURES: Final = "RefusedSignatures"
# A call handed to a person (or told goodbye) because Twilio refused its configuration twice: the
# configured one and the known-good one (a voice, provider or attribute the account cannot use).
CONFIGURATION_ERRORS: Final = "ConfigurationErrors"
# Per socket (the message function): a setup naming a call without that call's token.
REFUSED_SETUPS: Final = "RefusedSetups"

# After the call and on timers (the records and timer functions): records made, and attempts that
# failed (the queue retries them; the last one lands in the dead-letter queue); silence reminders,
# calls the agent ended after them or at the time limit, and calls that ended without any end
# callback (cut off).
CALL_RECORDS: Final = "CallRecords"
CALL_RECORD_FAILURES: Final = "CallRecordFailures"
SILENCE_REMINDERS: Final = "SilenceReminders"
SILENCE_HANGUPS: Final = "SilenceHangups"
TIME_LIMIT_HANGUPS: Final = "TimeLimitHangups"
CUT_OFF_CALLS: Final = "CutOffCalls"
# Per session (the message function): Twilio switched the session's configuration (a provider
# failover by <Failover>, or a config message applied), from its configUpdated events.
CONFIG_UPDATES: Final = "ConfigUpdates"
