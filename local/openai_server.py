"""An OpenAI-compatible Chat Completions server on loopback, streaming server-sent events.

It lets the real ``openai`` client code path run with no network and no key: the offline demo
model (``make dev`` / ``make demo``), the fake model of the tests, and the benchmark's model with a
set time to first token and token rate. A *brain* decides each reply; the server only speaks the
wire protocol (``/v1/chat/completions`` with ``stream: true``, and ``/v1/models``).

Faults for tests: an error status, a stream that stops half-way, a stream that never sends a
token, a connection dropped before the response.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, Protocol, Self

Fault = Literal["status", "cut", "stall", "drop", "exception"]


@dataclass(frozen=True, slots=True)
class ToolCallReply:
    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """One streamed completion: text tokens, then optionally tool calls."""

    tokens: Sequence[str] = ()
    tool_calls: Sequence[ToolCallReply] = ()
    # Faults: "status" answers ``status`` with an error body; "cut" stops the stream after
    # ``cut_after`` tokens without finishing it; "stall" sends headers then nothing; "drop"
    # closes the connection without a response; "exception" sends ``cut_after`` tokens and then an
    # error inside the stream (Bedrock's exception events; this server treats it as "cut").
    fault: Fault | None = None
    status: int = 500
    cut_after: int = 0
    # The error's name where the protocol has one (Bedrock: "ThrottlingException",
    # "ModelNotReadyException", "modelStreamErrorException", ...); None: the status's usual one.
    error: str | None = None
    # Per-reply timing overrides (seconds); None uses the server's settings.
    ttft_s: float | None = None
    token_interval_s: float | None = None


class Brain(Protocol):
    def reply(self, request: dict[str, Any]) -> Reply: ...


def split_tokens(text: str) -> list[str]:
    """Split text the way LLM tokenizers roughly do: words with their leading space."""
    tokens: list[str] = []
    for i, word in enumerate(text.split(" ")):
        tokens.append(word if i == 0 else " " + word)
    return [t for t in tokens if t]


@dataclass
class ScriptedBrain:
    """Replies from a queue (tests); records every request it answered."""

    replies: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=lambda: Reply(tokens=split_tokens("Okay.")))
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, *replies: Reply | str) -> None:
        with self._lock:
            for r in replies:
                self.replies.append(Reply(tokens=split_tokens(r)) if isinstance(r, str) else r)

    def reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self.replies.pop(0) if self.replies else self.default


@dataclass
class FunctionBrain:
    """Replies computed by a function (the demo model, the benchmark)."""

    fn: Callable[[dict[str, Any]], Reply]
    requests: int = 0

    def reply(self, request: dict[str, Any]) -> Reply:
        self.requests += 1
        return self.fn(request)


class QuietHTTPServer(ThreadingHTTPServer):
    """A client that cancels a stream (an interrupted turn) resets its connection; that is normal
    here, not a traceback on the console."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class StandInServer:
    """A model stand-in's HTTP server on a background thread: ``start``/``stop`` or ``with``; its
    request handler class is bound to the subclass instance (``_serve``)."""

    def _serve(self, handler: type[BaseHTTPRequestHandler], *, host: str, port: int, name: str) -> None:
        self.stopping = threading.Event()  # long streams give up when the server stops
        self._httpd = QuietHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class OpenAICompatibleServer(StandInServer):
    """``with OpenAICompatibleServer(brain) as server: server.base_url`` -> ``http://127.0.0.1:N/v1``."""

    def __init__(
        self,
        brain: Brain,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ttft_s: float = 0.0,
        token_interval_s: float = 0.0,
        model: str = "local-demo",
    ) -> None:
        self.brain = brain
        self.ttft_s = ttft_s
        self.token_interval_s = token_interval_s
        self.model = model
        self.completions = 0
        self.cancelled = 0  # streams the client closed before the end
        self._lock = threading.Lock()
        self._serve(_handler_for(self), host=host, port=port, name="openai-server")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def count(self, attr: Literal["completions", "cancelled"]) -> None:
        with self._lock:
            setattr(self, attr, getattr(self, attr) + 1)


class _Handler(BaseHTTPRequestHandler):
    stand_in: ClassVar[OpenAICompatibleServer]

    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs (the benchmark measures reuse)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": self.stand_in.model, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "invalid JSON"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found"}})
            return
        self.stand_in.count("completions")
        reply = self.stand_in.brain.reply(request)
        if reply.fault == "drop":
            self.close_connection = True
            self.connection.close()
            return
        if reply.fault == "status":
            self._json(reply.status, {"error": {"message": "injected failure", "type": "server_error"}})
            return
        if not request.get("stream"):
            self._json(400, {"error": {"message": "only streaming is implemented"}})
            return
        self._stream(request, reply)

    def _stream(self, request: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        ttft = self.stand_in.ttft_s if reply.ttft_s is None else reply.ttft_s
        gap = self.stand_in.token_interval_s if reply.token_interval_s is None else reply.token_interval_s
        model = str(request.get("model") or self.stand_in.model)
        try:
            self.wfile.flush()
            if reply.fault == "stall":
                self.stand_in.stopping.wait(60)  # the client's first-token timeout fires first
                return
            time.sleep(ttft)
            self._event(_chunk(model, {"role": "assistant", "content": ""}))
            for i, token in enumerate(reply.tokens):
                if reply.fault in ("cut", "exception") and i >= reply.cut_after:
                    self.close_connection = True
                    return  # no finish, no [DONE], no final chunk: a broken stream
                if i:
                    time.sleep(gap)
                self._event(_chunk(model, {"content": token}))
            if reply.fault in ("cut", "exception"):
                self.close_connection = True
                return
            for n, call in enumerate(reply.tool_calls):
                args = json.dumps(call.arguments)
                head = {"index": n, "id": call.id or f"call_{n}_{int(time.time() * 1000)}", "type": "function"}
                self._event(_chunk(model, {"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]}))
                for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                    self._event(_chunk(model, {"tool_calls": [{"index": n, "function": {"arguments": piece}}]}))
            finish = "tool_calls" if reply.tool_calls else "stop"
            self._event(_chunk(model, {}, finish))
            self._raw(b"data: [DONE]\n\n")
            self._raw(b"")  # last chunk
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.stand_in.count("cancelled")
            self.close_connection = True

    def _event(self, payload: dict[str, Any]) -> None:
        self._raw(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")

    def _raw(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _handler_for(server: OpenAICompatibleServer) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to ``server`` (``http.server`` builds one handler per request)."""
    return type("Handler", (_Handler,), {"stand_in": server})


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-local",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
