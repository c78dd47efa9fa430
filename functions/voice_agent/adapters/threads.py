"""The threads a turn uses, kept out of the framework-free core: a model stream read on a helper
thread (so the turn's own thread can flush a phrase on time and enforce its deadlines whatever the
transport does), and the pools for tools and for store requests run beside the turn."""

from __future__ import annotations

import contextvars
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from voice_agent.core.model import ChatRequest, StreamEvent, StreamFailed, StreamFinished
from voice_agent.core.ports import ChatModel, ChatStream
from voice_agent.errors import StreamEndedError

_JOIN_TIMEOUT_S: Final = 0.5

TOOL_POOL: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tool")
# Store requests run beside the turn's own thread (the history next to the generation). A Lambda
# runs one turn at a time, so it starts a thread or two; the local stand-in runs many invocations
# in one process.
STORE_POOL: Final = ThreadPoolExecutor(max_workers=64, thread_name_prefix="store")
# Start-of-call hooks (core/start_hook.py): apart, so a hook stuck past its time limit holds
# neither a tool's thread nor a store request's.
HOOK_POOL: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hook")


class ThreadedPump(threading.Thread):
    """Reads one model stream on a helper thread; ``cancel`` closes the request."""

    def __init__(self, model: ChatModel, request: ChatRequest) -> None:
        super().__init__(name="llm-stream", daemon=True)
        self._events: queue.Queue[StreamEvent | StreamFailed] = queue.Queue()
        self._model = model
        self._request = request
        self._stream: ChatStream | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._opened = threading.Event()  # the request is out (or failed): the turn's CPU is free
        self._context = contextvars.copy_context()  # the turn's log keys (call, request id) come along

    def run(self) -> None:
        self._context.run(self._read)

    def _read(self) -> None:
        try:
            try:
                stream = self._model.stream(self._request)
            finally:
                self._opened.set()
            with self._lock:
                if self._cancelled.is_set():
                    stream.close()
                    return
                self._stream = stream
            for event in stream:
                if self._cancelled.is_set():
                    return
                self._events.put(event)
                if isinstance(event, StreamFinished):
                    return
            if not self._cancelled.is_set():  # ended without saying it had finished
                self._events.put(StreamFailed(StreamEndedError("the stream ended before it finished")))
        except BaseException as exc:  # everything the model does wrong becomes an apology
            if not self._cancelled.is_set():
                self._events.put(StreamFailed(exc))

    def wait_opened(self, timeout_s: float) -> None:
        self._opened.wait(timeout_s)

    def next_event(self, timeout_s: float) -> StreamEvent | StreamFailed | None:
        try:
            return self._events.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return None

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            stream = self._stream
        if stream is not None:
            stream.close()
        if self.is_alive():
            self.join(_JOIN_TIMEOUT_S)


def start_pump(model: ChatModel, request: ChatRequest) -> ThreadedPump:
    pump = ThreadedPump(model, request)
    pump.start()
    return pump
