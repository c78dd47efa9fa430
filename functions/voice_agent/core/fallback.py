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

Each model is read through a ``ModelPump`` (the reader the turn engine uses, on its own thread),
so the wait for a first event can end on time whatever the transport does. Each switch is reported
to ``on_fallback`` (wiring logs it and counts it as the ``LLMFallbacks`` metric). Framework-free:
no boto3, no SDK, no thread of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from voice_agent.core.model import ChatRequest, StreamEvent, StreamFailed, StreamFinished, TextDelta
from voice_agent.core.ports import ChatModel, ModelPump, StartPump
from voice_agent.errors import LLMError, StreamEndedError

_POLL_S: Final = 0.25  # how often a wait looks at whether the stream was closed


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
        start_pump: StartPump,
        on_fallback: Callable[[Fallback], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not candidates:
            raise ValueError("a fallback chain needs at least one model")
        self._candidates = tuple(candidates)
        self._first_token_timeout_s = first_token_timeout_s
        self._start_pump = start_pump
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


class FallbackStream:
    def __init__(self, chain: FallbackChatModel, request: ChatRequest) -> None:
        self._chain = chain
        self._request = request
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._current: ModelPump | None = None

    def __iter__(self) -> Iterator[StreamEvent]:
        candidates = self._chain._candidates
        for index, candidate in enumerate(candidates):
            last = index == len(candidates) - 1
            pump = self._open(candidate.model)
            if pump is None:
                return  # closed
            limit = None if last else self._chain._clock() + self._chain._first_token_timeout_s
            first = self._next(pump, until=limit)
            if self._closed.is_set():
                pump.cancel()
                return
            if isinstance(first, TextDelta | StreamFinished):
                yield first  # committed: this model answers the turn
                yield from self._rest(pump)
                return
            pump.cancel()
            if last:
                raise _as_llm_error(first.error) if first is not None else LLMError("no first event")
            reason = "first_token_timeout" if first is None else _reason(first.error)
            self._chain._report(Fallback(failed=candidate.name, next=candidates[index + 1].name, reason=reason))

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            pump = self._current
        if pump is not None:
            pump.cancel()

    def _open(self, model: ChatModel) -> ModelPump | None:
        with self._lock:
            if self._closed.is_set():
                return None
            pump = self._chain._start_pump(model, self._request)
            self._current = pump
        return pump

    def _next(self, pump: ModelPump, *, until: float | None) -> StreamEvent | StreamFailed | None:
        """The pump's next item; None once ``until`` passed or the stream was closed."""
        while not self._closed.is_set():
            wait = _POLL_S if until is None else min(_POLL_S, until - self._chain._clock())
            if wait <= 0:
                return None
            item = pump.next_event(wait)
            if item is not None:
                return item
        return None

    def _rest(self, pump: ModelPump) -> Iterator[StreamEvent]:
        try:
            while True:
                item = self._next(pump, until=None)
                if item is None:
                    return
                if isinstance(item, StreamFailed):
                    raise _as_llm_error(item.error)
                yield item
                if isinstance(item, StreamFinished):
                    return
        finally:
            pump.cancel()


def _reason(error: BaseException) -> str:
    if isinstance(error, StreamEndedError):
        return "empty"
    return str(getattr(error, "kind", type(error).__name__))


def _as_llm_error(error: BaseException) -> BaseException:
    if isinstance(error, LLMError):
        return error
    wrapped = LLMError(f"model failed: {type(error).__name__}")
    wrapped.__cause__ = error
    return wrapped
