"""Domain exceptions. Adapters translate library errors into these (``raise ... from exc``);
the core and the entry points map them to behaviour in one place each."""


class VoiceAgentError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigurationError(VoiceAgentError):
    """The deployment or agent configuration is invalid; raised at start-up with a clear message."""


class MalformedMessageError(VoiceAgentError):
    """An inbound WebSocket frame is not a usable ConversationRelay message."""


class OutboundValidationError(VoiceAgentError):
    """An outbound message would be rejected by Twilio (error 64107); it is never sent."""


class ConnectionGoneError(VoiceAgentError):
    """The WebSocket is gone (API Gateway 410): the caller hung up or the socket dropped."""


class SendError(VoiceAgentError):
    """A frame could not be delivered for another reason (throttled, timed out, refused)."""


class ConnectionAlreadyBoundError(VoiceAgentError):
    """A connection belongs to the call of its first ``setup``; a later setup on it is refused."""


class CallTokenMismatchError(VoiceAgentError):
    """A ``setup`` names a call without that call's token: not the socket Twilio opened for it."""


class ReplayedMessageError(VoiceAgentError):
    """A caller message the previous socket of the call already took, replayed by Twilio after an
    application reconnect: it is not answered twice."""


class StoreUnavailableError(VoiceAgentError):
    """DynamoDB could not serve a request within the retry budget."""


class QueueError(VoiceAgentError):
    """A message could not be put on a queue (a timer, or a call's record request)."""


class RecordError(VoiceAgentError):
    """A call record could not be stored or announced; the request is retried, then dead-lettered."""


class LLMError(VoiceAgentError):
    """The language model failed: connection, status, timeout or a broken stream.

    ``kind`` names the failure for logs and metrics (never the prompt or the reply). Every
    subclass is an ``LLMError``, so whatever the model does wrong the caller hears the apology; the
    fallback chain (``core/fallback.py``) reads ``kind`` only to say why it moved on.
    """

    kind = "error"


class LLMThrottledError(LLMError):
    """The provider refused the request for now: too many requests or tokens (HTTP 429)."""

    kind = "throttled"


class LLMUnavailableError(LLMError):
    """The model or the service cannot answer now: not ready, overloaded, an internal error, a
    timeout, or the connection failed."""

    kind = "unavailable"


class LLMRejectedError(LLMError):
    """The provider refused this request as invalid (a request shape it does not accept)."""

    kind = "rejected"


class LLMAccessDeniedError(LLMError):
    """The caller may not use this model: missing IAM permission, model access not granted, an
    unknown model id, or a bad key. A deployment problem, not a passing one."""

    kind = "access_denied"


class LLMStreamBrokenError(LLMError):
    """The reply stream broke after it started: an error event, a dropped connection, or no end."""

    kind = "stream_broken"


class StreamEndedError(LLMError):
    """The model's stream ended before it said it had finished (no finish event)."""


class ToolError(VoiceAgentError):
    """A tool call could not be executed (unknown tool, bad arguments, failure, time limit)."""
