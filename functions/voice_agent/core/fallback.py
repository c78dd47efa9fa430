"""A chain of models that answers like one model: when a model fails before its first word, the
next one answers the same request, inside the same turn.

``FallbackChatModel.stream()`` returns at once; iterating it opens the first model and waits for
its first event. If the model fails before that (an error, throttling, a refused request) or sends
nothing within ``first_token_timeout_s``, its stream is closed (the request is cancelled, nothing
more is billed) and the next model is opened. The last model has no limit of its own: the turn
engine's first-token and turn deadlines bound it, as they bound the whole chain (the engine closes
this stream when they pass, which closes the model it is waiting on). Once a text delta or a tool
call has come out, the chain is committed: a failure after that is the turn's failure (the caller
has heard words; a second voice starting over would be worse than the apology).

Each model is read on its own helper thread into a queue, so the wait for a first event can end on
time whatever the transport does. Each switch is reported to ``on_fallback`` (wiring logs it and
counts it as the ``LLMFallbacks`` metric). Framework-free: no boto3, no SDK.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from voice_agent.core.model import ChatRequest, StreamEvent
from voice_agent.core.ports import ChatModel, ChatStream
from voice_agent.errors import LLMError

_POLL_S: Final = 0.25  # how often a wait looks at whether the stream was closed
_JOIN_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class Fallback:
    """One switch: ``failed`` did not start a reply (``reason``), ``next`` takes the request."""

    failed: str
    next: str
    reason: str  # an LLMError kind, "first_token_timeout", "empty" or an exception's class name


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str  # how logs name it, e.g. "bedrock:us.amazon.nova-lite-v1:0"
    model: ChatModel


class FallbackChatModel:
    def __init__(
        self,
        candidates: Sequence[Candidate],
        *,
        first_token_timeout_s: float,
        on_fallback: Callable[[Fallback], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not candidates:
            raise ValueError("a fallback chain needs at least one model")
        self._candidates = tuple(candidates)
        self._first_token_timeout_s = first_token_timeout_s
        self._on_fallback = on_fallback
        self._clock = clock

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self._candidates)

    def warm(self) -> None:
        for candidate in self._candidates:  # each warm-up is best effort by the port's contract
            candidate.model.warm()

    def stream(self, request: ChatRequest) -> FallbackStream:
        return FallbackStream(self, request)

    def _report(self, event: Fallback) -> None:
        if self._on_fallback is not None:
            self._on_fallback(event)


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


class _End:
    """The model's stream ended."""


_END: Final = _End()


class _Reader(threading.Thread):
    """Opens one model's stream and reads it into a queue; ``cancel`` closes it."""

    def __init__(self, model: ChatModel, request: ChatRequest) -> None:
        super().__init__(name="llm-fallback", daemon=True)
        self.events: queue.Queue[StreamEvent | _Failure | _End] = queue.Queue()
        self._model = model
        self._request = request
        self._stream: ChatStream | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            stream = self._model.stream(self._request)
            with self._lock:
                if self._cancelled.is_set():
                    stream.close()
                    return
                self._stream = stream
            for event in stream:
                if self._cancelled.is_set():
                    return
                self.events.put(event)
            if not self._cancelled.is_set():
                self.events.put(_END)
        except BaseException as exc:  # whatever the model does wrong is this model's failure
            if not self._cancelled.is_set():
                self.events.put(_Failure(exc))

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            stream = self._stream
        if stream is not None:
            stream.close()


class FallbackStream:
    def __init__(self, chain: FallbackChatModel, request: ChatRequest) -> None:
        self._chain = chain
        self._request = request
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._current: _Reader | None = None

    def __iter__(self) -> Iterator[StreamEvent]:
        candidates = self._chain._candidates
        for index, candidate in enumerate(candidates):
            last = index == len(candidates) - 1
            reader = self._open(candidate.model)
            if reader is None:
                return  # closed
            limit = None if last else self._chain._clock() + self._chain._first_token_timeout_s
            first = self._next(reader, until=limit)
            if self._closed.is_set():
                self._finish(reader)
                return
            if first is None:
                reason = "first_token_timeout"
            elif isinstance(first, _Failure):
                reason = getattr(first.error, "kind", type(first.error).__name__)
                if last:
                    self._finish(reader)
                    raise _as_llm_error(first.error)
            elif isinstance(first, _End):
                reason = "empty"
                if last:
                    self._finish(reader)
                    raise LLMError(f"{candidate.name}: the stream ended before any event")
            else:
                yield first  # committed: this model answers the turn
                yield from self._rest(reader)
                return
            self._finish(reader)
            self._chain._report(Fallback(failed=candidate.name, next=candidates[index + 1].name, reason=reason))

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            reader = self._current
        if reader is not None:
            reader.cancel()

    def _open(self, model: ChatModel) -> _Reader | None:
        reader = _Reader(model, self._request)
        with self._lock:
            if self._closed.is_set():
                return None
            self._current = reader
        reader.start()
        return reader

    def _next(self, reader: _Reader, *, until: float | None) -> StreamEvent | _Failure | _End | None:
        """The reader's next item; None once ``until`` passed or the stream was closed."""
        while not self._closed.is_set():
            wait = _POLL_S if until is None else min(_POLL_S, until - self._chain._clock())
            if wait <= 0:
                return None
            try:
                return reader.events.get(timeout=wait)
            except queue.Empty:
                continue
        return None

    def _rest(self, reader: _Reader) -> Iterator[StreamEvent]:
        try:
            while True:
                item = self._next(reader, until=None)
                if item is None or isinstance(item, _End):
                    return
                if isinstance(item, _Failure):
                    raise _as_llm_error(item.error)
                yield item
        finally:
            self._finish(reader)

    def _finish(self, reader: _Reader) -> None:
        reader.cancel()
        reader.join(_JOIN_S)


def _as_llm_error(error: BaseException) -> BaseException:
    if isinstance(error, LLMError):
        return error
    wrapped = LLMError(f"model failed: {type(error).__name__}")
    wrapped.__cause__ = error
    return wrapped
