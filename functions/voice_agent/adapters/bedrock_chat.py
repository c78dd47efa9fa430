"""The language model on Amazon Bedrock: ``converse_stream`` through boto3 (no other SDK).

Behind the same port as the OpenAI adapter (``ChatModel`` / ``ChatStream``), with the behaviour
the turn engine relies on:

- text deltas as they arrive; tool calls assembled from ``contentBlockStart`` (id, name) and the
  ``toolUse`` input deltas; the stop reason; the token usage of the ``metadata`` event;
- the request built by ``bedrock_messages`` (system prompt in ``system``, caller speech only in
  the user role, a history the service accepts whatever it holds);
- ``close()`` shuts the socket down at once, from any thread: a read blocked in another thread
  returns, the service sees the connection go and stops generating (and billing);
- deadlines: ``connect_timeout_s`` bounds the connection, ``read_timeout_s`` every read; the turn
  engine's first-token, token-gap and turn deadlines are shorter and close the stream first;
- every failure is a domain error (``errors.LLMError`` and its kinds) through one context
  manager, :func:`bedrock_errors`; logs carry the error code and status, never the service's
  message (it can quote the request) and never prompt or reply text.

Amazon Nova (and some Claude models) think aloud in ``<thinking>`` tags before a tool call; a
phone agent must not read that out, so :class:`ThinkingFilter` removes it from the spoken text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import (
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from voice_agent.adapters import aws_clients
from voice_agent.adapters.bedrock_messages import converse_arguments
from voice_agent.core.model import ChatRequest, StreamEvent, StreamFinished, TextDelta, TokenUsage, ToolCall
from voice_agent.errors import (
    LLMAccessDeniedError,
    LLMError,
    LLMRejectedError,
    LLMStreamBrokenError,
    LLMThrottledError,
    LLMUnavailableError,
)
from voice_agent.log import logger

if TYPE_CHECKING:
    from botocore.eventstream import EventStream
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

# Error codes (the HTTP error's ``x-amzn-ErrorType``, or an exception event's name, which starts
# in lower case) to the domain error they mean.
_ERRORS: Final[dict[str, type[LLMError]]] = {
    "throttlingexception": LLMThrottledError,
    "servicequotaexceededexception": LLMThrottledError,
    "toomanyrequestsexception": LLMThrottledError,
    "modelnotreadyexception": LLMUnavailableError,
    "serviceunavailableexception": LLMUnavailableError,
    "internalserverexception": LLMUnavailableError,
    "modeltimeoutexception": LLMUnavailableError,
    "modelerrorexception": LLMUnavailableError,
    "validationexception": LLMRejectedError,
    "accessdeniedexception": LLMAccessDeniedError,
    "resourcenotfoundexception": LLMAccessDeniedError,
    "unrecognizedclientexception": LLMAccessDeniedError,
    "expiredtokenexception": LLMAccessDeniedError,
    "invalidsignatureexception": LLMAccessDeniedError,
    "modelstreamerrorexception": LLMStreamBrokenError,
}
# Bedrock's stop reasons as the finish reasons the rest of the project knows (OpenAI's words).
FINISH_REASONS: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# The model produced something unusable: nothing to speak, so the turn fails (and may fall back).
_MALFORMED: Final = frozenset({"malformed_model_output", "malformed_tool_use"})


def error_for(exc: BaseException, *, streaming: bool) -> LLMError:
    """The domain error for a botocore / transport failure (no message text from the service)."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")) or "Unknown"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        kind = _ERRORS.get(code.lower()) or _by_status(status)
        return kind(f"bedrock: {code}" + (f" (HTTP {status})" if status else ""))
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError):
        return LLMAccessDeniedError(f"bedrock: not configured ({type(exc).__name__})")
    if isinstance(exc, ParamValidationError):
        return LLMRejectedError("bedrock: the request failed the SDK's parameter validation")
    if streaming:  # the connection broke, timed out or was closed mid-reply
        return LLMStreamBrokenError(f"bedrock stream: {type(exc).__name__}")
    return LLMUnavailableError(f"bedrock: {type(exc).__name__}")


def _by_status(status: int | None) -> type[LLMError]:
    if status == 429:
        return LLMThrottledError
    return LLMUnavailableError if (status or 500) >= 500 else LLMRejectedError


@contextmanager
def bedrock_errors(
    operation: str, model: str, *, streaming: bool = False, cancelled: Callable[[], bool] | None = None
) -> Iterator[None]:
    """Turn every failure inside into a domain error, logged once with its code. A stream closed
    on purpose (``cancelled``) just ends: its broken read is the cancellation, not a failure."""
    try:
        yield
    except LLMError:
        raise
    except Exception as exc:  # botocore, urllib3 and socket errors all mean the same to a caller
        if cancelled is not None and cancelled():
            return
        error = error_for(exc, streaming=streaming)
        extra: dict[str, object] = {"operation": operation, "model": model, "kind": error.kind}
        if isinstance(exc, ClientError):
            extra["error_code"] = exc.response.get("Error", {}).get("Code")
            extra["status"] = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        else:
            extra["error"] = type(exc).__name__
        logger.warning("bedrock request failed", extra=extra)
        raise error from exc


class ThinkingFilter:
    """Removes ``<thinking>...</thinking>`` from streamed text, tags split across deltas included.

    Text that might be the start of a tag is held back until the next delta says what it is; the
    whitespace right after a closing tag is dropped (the spoken reply starts at its first word).
    """

    OPEN: Final = "<thinking>"
    CLOSE: Final = "</thinking>"

    def __init__(self) -> None:
        self._pending = ""
        self._inside = False
        self._trim = False

    def feed(self, text: str) -> str:
        self._pending += text
        out: list[str] = []
        while self._pending:
            if self._inside:
                end = self._pending.find(self.CLOSE)
                if end < 0:
                    self._pending = self._pending[-(len(self.CLOSE) - 1) :]
                    break
                self._pending = self._pending[end + len(self.CLOSE) :]
                self._inside = False
                self._trim = True
                continue
            start = self._pending.find(self.OPEN)
            if start >= 0:
                out.append(self._trimmed(self._pending[:start]))
                self._pending = self._pending[start + len(self.OPEN) :]
                self._inside = True
                continue
            hold = _partial_tag(self._pending, self.OPEN)
            out.append(self._trimmed(self._pending[: len(self._pending) - hold]))
            self._pending = self._pending[len(self._pending) - hold :]
            break
        return "".join(out)

    def flush(self) -> str:
        rest = "" if self._inside else self._pending
        self._pending = ""
        return self._trimmed(rest)

    def _trimmed(self, text: str) -> str:
        if self._trim and text:
            text = text.lstrip()
            self._trim = not text
        return text


def _partial_tag(text: str, tag: str) -> int:
    """How many trailing characters of ``text`` could begin ``tag``."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Reply:
    """What the events of one reply said so far."""

    spoken: ThinkingFilter = field(default_factory=ThinkingFilter)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    stop: str | None = None
    usage: TokenUsage | None = None

    def take(self, event: Mapping[str, Any]) -> str:
        """Read one event; returns the text to speak now (often none)."""
        if "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block.get("delta", {})
            if "text" in delta:
                return self.spoken.feed(delta["text"])
            if "toolUse" in delta:
                self._call(block).arguments.append(delta["toolUse"].get("input", ""))
            # reasoningContent deltas (a model's own reasoning) are never spoken
        elif "contentBlockStart" in event:
            block = event["contentBlockStart"]
            tool = block.get("start", {}).get("toolUse")
            if tool is not None:
                call = self._call(block)
                call.id, call.name = tool.get("toolUseId", ""), tool.get("name", "")
        elif "messageStop" in event:
            self.stop = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            reported = event["metadata"].get("usage") or {}
            self.usage = TokenUsage(int(reported.get("inputTokens", 0)), int(reported.get("outputTokens", 0)))
        return ""

    def _call(self, block: Mapping[str, Any]) -> _PartialCall:
        return self.calls.setdefault(int(block.get("contentBlockIndex", 0)), _PartialCall())

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=p.id or f"tooluse_{i}", name=p.name, arguments="".join(p.arguments) or "{}")
            for i, p in sorted(self.calls.items())
            if p.name
        )


UsageSink = Callable[[str, TokenUsage], None]


class BedrockChatStream:
    def __init__(self, stream: EventStream[Any], *, model: str, on_usage: UsageSink | None = None) -> None:
        self._stream = stream
        self._model = model
        self._on_usage = on_usage
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[StreamEvent]:
        reply = _Reply()
        read_to_the_end = False
        try:
            with bedrock_errors("converse_stream", self._model, streaming=True, cancelled=self._closed.is_set):
                for event in self._stream:
                    text = reply.take(event)
                    if text:
                        yield TextDelta(text)
            read_to_the_end = True
        finally:
            if not read_to_the_end:  # a failure or a reader that stopped early: free the connection
                self._release()
        if self._closed.is_set():
            return
        tail = reply.spoken.flush()
        if tail:
            yield TextDelta(tail)
        if reply.stop is None:
            logger.warning("bedrock stream ended without messageStop", extra={"model": self._model})
            raise LLMStreamBrokenError("bedrock stream: ended without messageStop")
        if reply.stop in _MALFORMED:
            logger.warning("bedrock model output unusable", extra={"model": self._model, "stop_reason": reply.stop})
            raise LLMUnavailableError(f"bedrock: stop reason {reply.stop}")
        if reply.usage is not None and self._on_usage is not None:
            self._on_usage(self._model, reply.usage)
        finish = FINISH_REASONS.get(reply.stop, reply.stop)
        yield StreamFinished(finish_reason=finish, tool_calls=reply.tool_calls(), usage=reply.usage)

    def close(self) -> None:
        """Stop the reply now: shut the socket down (a read blocked in another thread returns at
        once), then close the stream."""
        self._closed.set()
        self._release()

    def _release(self) -> None:
        raw = getattr(self._stream, "_raw_stream", None)  # botocore keeps urllib3's response here
        shutdown = getattr(raw, "shutdown", None)
        if callable(shutdown):
            try:
                shutdown()
            except Exception:  # already released or closed: nothing left to interrupt
                logger.debug("bedrock stream shutdown raised", exc_info=True)
        try:
            self._stream.close()
        except Exception:  # closing a broken stream may raise; it is closed either way
            logger.debug("bedrock stream close raised", exc_info=True)


class BedrockChatModel:
    def __init__(
        self,
        *,
        model: str,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_attempts: int = 2,
        client: Callable[[], BedrockRuntimeClient] | None = None,
        on_usage: UsageSink | None = None,
    ) -> None:
        self._model = model
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max_attempts = max_attempts
        self._client = client
        self._on_usage = on_usage

    @property
    def model(self) -> str:
        return self._model

    def client(self) -> BedrockRuntimeClient:
        if self._client is not None:
            return self._client()
        return aws_clients.bedrock_runtime(
            connect_timeout_s=self._connect_timeout_s,
            read_timeout_s=self._read_timeout_s,
            max_attempts=self._max_attempts,
        )

    def warm(self) -> None:
        """Build the client (credentials, endpoint) and load ConverseStream's shapes, the CPU a
        first turn would otherwise spend. No request: the runtime API has no free call the role
        may make, and one it may not would fill CloudTrail with AccessDenied; the TLS connection
        opens with the first turn (in-region, a few milliseconds)."""
        try:
            client = self.client()
            client.meta.service_model.operation_model("ConverseStream").output_shape  # noqa: B018
        except Exception as exc:  # warming is best effort
            logger.info("llm warm-up skipped", extra={"error": type(exc).__name__, "model": self._model})

    def stream(self, request: ChatRequest) -> BedrockChatStream:
        arguments: dict[str, Any] = converse_arguments(self._model, request)
        with bedrock_errors("converse_stream", self._model):
            response = self.client().converse_stream(**arguments)
        return BedrockChatStream(response["stream"], model=self._model, on_usage=self._on_usage)
