"""Fakes for the core's ports (fakes, not mocks: they behave, and record what happened)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from voice_agent.core.model import ChatRequest, RecordRequest, StreamEvent, StreamFinished, TextDelta, Timer, ToolCall
from voice_agent.errors import ConnectionGoneError, LLMError, QueueError
from voice_agent.protocol.outbound import End, OutboundMessage, Text, encode


@dataclass
class RecordingSender:
    """Records every message per connection; can play a hung-up caller or a refusing API."""

    messages: list[tuple[str, OutboundMessage]] = field(default_factory=list)
    gone_after: int | None = None  # raise ConnectionGoneError from the (n+1)-th send on
    fail_with: type[Exception] | None = None
    on_send: Callable[[str, OutboundMessage], object] | None = None
    delay_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, connection_id: str, message: OutboundMessage) -> None:
        encode(message)  # what the real sender would refuse, this one refuses too
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            if self.gone_after is not None and len(self.messages) >= self.gone_after:
                raise ConnectionGoneError(connection_id)
            if self.fail_with is not None:
                raise self.fail_with("injected")
            self.messages.append((connection_id, message))
        if self.on_send is not None:
            self.on_send(connection_id, message)

    def for_connection(self, connection_id: str) -> list[OutboundMessage]:
        with self._lock:
            return [m for c, m in self.messages if c == connection_id]

    def texts(self, connection_id: str) -> list[Text]:
        return [m for m in self.for_connection(connection_id) if isinstance(m, Text)]

    def spoken(self, connection_id: str) -> str:
        return "".join(t.token for t in self.texts(connection_id))

    def ends(self, connection_id: str) -> list[End]:
        return [m for m in self.for_connection(connection_id) if isinstance(m, End)]


@dataclass(frozen=True)
class ScriptedReply:
    tokens: Sequence[str] = ()
    tool_calls: Sequence[ToolCall] = ()
    error_at: int | None = None  # raise LLMError before token n (0: the request itself fails)
    token_delay_s: float = 0.0
    first_delay_s: float = 0.0


def words(text: str) -> list[str]:
    parts = text.split(" ")
    return [parts[0], *(" " + p for p in parts[1:])]


class _Stream:
    def __init__(self, reply: ScriptedReply, model: ScriptedModel) -> None:
        self._reply = reply
        self._model = model
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[StreamEvent]:
        r = self._reply
        if r.first_delay_s:
            self.closed.wait(r.first_delay_s)
        for i, token in enumerate(r.tokens):
            if self.closed.is_set():
                return
            if r.error_at is not None and i >= r.error_at:
                raise LLMError("injected mid-stream failure")
            if i and r.token_delay_s:
                self.closed.wait(r.token_delay_s)
            self._model.tokens_streamed += 1
            yield TextDelta(token)
        if r.error_at is not None and r.error_at >= len(r.tokens):
            raise LLMError("injected failure at the end")
        yield StreamFinished(finish_reason="tool_calls" if r.tool_calls else "stop", tool_calls=tuple(r.tool_calls))

    def close(self) -> None:
        if not self.closed.is_set():
            self._model.closed += 1
        self.closed.set()


@dataclass
class ScriptedModel:
    """A ChatModel at the port boundary: replies in order, records requests and cancellations."""

    replies: list[ScriptedReply] = field(default_factory=list)
    requests: list[ChatRequest] = field(default_factory=list)
    closed: int = 0
    tokens_streamed: int = 0
    warmed: int = 0
    on_request: Callable[[ChatRequest], None] | None = None  # called as each request goes out
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, *texts: str, token_delay_s: float = 0.0) -> ScriptedModel:
        for t in texts:
            self.replies.append(ScriptedReply(tokens=words(t), token_delay_s=token_delay_s))
        return self

    def stream(self, request: ChatRequest) -> _Stream:
        if self.on_request is not None:
            self.on_request(request)
        with self._lock:
            self.requests.append(request)
            reply = self.replies.pop(0) if self.replies else ScriptedReply(tokens=words("Okay."))
        if reply.error_at == 0 and not reply.tokens:
            raise LLMError("injected request failure")
        return _Stream(reply, self)

    def warm(self) -> None:
        self.warmed += 1


@dataclass
class RecordingTimers:
    """``Timers`` that keeps what was set (and, when a sender is given, how many frames had gone out
    by then: a timer must be set after the reply's ``last``, never before)."""

    timers: list[tuple[Timer, float]] = field(default_factory=list)
    sender: RecordingSender | None = None
    frames_before: list[int] = field(default_factory=list)
    fail: bool = False

    def schedule(self, timer: Timer, delay_s: float) -> None:
        if self.fail:
            raise QueueError("injected")
        self.timers.append((timer, delay_s))
        if self.sender is not None:
            self.frames_before.append(len(self.sender.messages))

    def of(self, kind: str) -> list[Timer]:
        return [t for t, _ in self.timers if t.kind == kind]

    def last(self, kind: str) -> Timer:
        return self.of(kind)[-1]

    def pop(self, kind: str) -> tuple[Timer, float]:
        """The newest timer of ``kind``, forgotten (the test fires it)."""
        index = max(i for i, (t, _) in enumerate(self.timers) if t.kind == kind)
        return self.timers.pop(index)


@dataclass
class RecordingRecordQueue:
    asked: list[tuple[RecordRequest, float]] = field(default_factory=list)

    def request(self, request: RecordRequest, delay_s: float = 0) -> None:
        self.asked.append((request, delay_s))


def sqs_event(*bodies: str, receive_count: int = 1) -> dict[str, object]:
    """What Lambda's SQS event source mapping delivers."""
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "eventSource": "aws:sqs",
            }
            for i, body in enumerate(bodies)
        ]
    }
