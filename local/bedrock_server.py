"""A Bedrock runtime stand-in on loopback: ConverseStream over the real wire protocol.

``POST /model/{modelId}/converse-stream`` is answered the way the service answers it, so the
unmodified boto3 client runs against it (``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` points boto3 here):

- the request must be signed (SigV4 for the signing name ``bedrock``, or a Bedrock API key as a
  bearer token); the signature is read (who signed, for which region), not verified;
- it is checked against the service's rules (``bedrock_rules.py``): a request the real service
  would refuse gets the same ``ValidationException`` (HTTP 400, ``x-amzn-ErrorType`` and a JSON
  ``message``), and is kept in ``refused`` so a test can insist there were none;
- an accepted request streams ``application/vnd.amazon.eventstream``: binary event-stream messages
  (prelude, headers, JSON payload, CRC32s; :func:`encode_message`), one per HTTP chunk:
  ``messageStart``, ``contentBlockDelta`` (text, and ``toolUse`` input), ``contentBlockStart`` and
  ``contentBlockStop`` around tool calls, ``messageStop`` with its ``stopReason``, ``metadata``
  with token usage. With ``think_aloud`` a tool call is preceded by ``<thinking>`` text, as Amazon
  Nova does;
- faults (``Reply.fault``): an HTTP error with the service's error type, a stream cut half-way, an
  exception event inside the stream, a stall, a dropped connection.

The reply itself comes from a *brain*, the same ones the OpenAI-compatible server uses
(``openai_server.Brain``): each request is shown to it in the OpenAI shape (:func:`openai_view`),
so the offline demo model, the tests' scripted models and the benchmark's model answer either
protocol unchanged.
"""

from __future__ import annotations

import json
import re
import secrets
import struct
import threading
import time
from binascii import crc32
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, Final, Literal
from urllib.parse import unquote

from local.bedrock_rules import violation
from local.openai_server import Brain, Reply, StandInServer, split_tokens
from local.servers import LOOPBACK

CONTENT_TYPE: Final = "application/vnd.amazon.eventstream"
_PATH: Final = re.compile(r"^/model/(?P<model>[^/]+)/converse-stream$")
_CREDENTIAL: Final = re.compile(r"Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
# The error type each status stands for when a fault names none (the service's own names).
ERRORS_BY_STATUS: Final = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
THINKING: Final = "<thinking>The caller's request needs a tool; I will call it now.</thinking>\n"


# -- the AWS event stream encoding (botocore.eventstream decodes it) ---------------------------------

_STRING_HEADER: Final = 7


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total and headers length, CRC32 of both), headers
    (name, type 7 = string, length, value), payload, CRC32 of everything before it."""
    encoded_headers = b"".join(
        struct.pack(">B", len(name.encode()))
        + name.encode()
        + struct.pack(">BH", _STRING_HEADER, len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded_headers))
    head = prelude + struct.pack(">I", crc32(prelude) & 0xFFFFFFFF)
    body = head + encoded_headers + payload
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


def event(event_type: str, body: Mapping[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    padded = {**body, "p": _padding()}  # the service pads every event (a length side channel)
    return encode_message(headers, json.dumps(padded, separators=(",", ":")).encode())


def exception_event(exception_type: str, message: str) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, json.dumps({"message": message}).encode())


def _padding() -> str:
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[: secrets.randbelow(40) + 1]


# -- a Bedrock request, as the brains read requests ---------------------------------------------------


def openai_view(model_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The request in the OpenAI Chat Completions shape: system, user, assistant (with
    ``tool_calls``) and ``tool`` messages, and the tools offered."""
    messages: list[dict[str, Any]] = []
    system = "\n\n".join(b["text"] for b in body.get("system", []) if "text" in b)
    if system:
        messages.append({"role": "system", "content": system})
    for message in body.get("messages", []):
        blocks = message.get("content", [])
        text = "\n\n".join(b["text"] for b in blocks if "text" in b)
        if message.get("role") == "assistant":
            calls = [
                {
                    "id": b["toolUse"]["toolUseId"],
                    "type": "function",
                    "function": {"name": b["toolUse"]["name"], "arguments": json.dumps(b["toolUse"]["input"])},
                }
                for b in blocks
                if "toolUse" in b
            ]
            messages.append({"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})})
            continue
        for b in blocks:
            if "toolResult" in b:
                content = "".join(part.get("text", "") for part in b["toolResult"].get("content", []))
                messages.append({"role": "tool", "tool_call_id": b["toolResult"]["toolUseId"], "content": content})
        if text:
            messages.append({"role": "user", "content": text})
    tools = [
        {
            "type": "function",
            "function": {
                "name": t["toolSpec"]["name"],
                "description": t["toolSpec"].get("description", ""),
                "parameters": t["toolSpec"]["inputSchema"]["json"],
            },
        }
        for t in (body.get("toolConfig") or {}).get("tools", [])
    ]
    config = body.get("inferenceConfig") or {}
    view: dict[str, Any] = {"model": model_id, "messages": messages, "stream": True}
    if tools:
        view["tools"] = tools
    if "maxTokens" in config:
        view["max_completion_tokens"] = config["maxTokens"]
    if "temperature" in config:
        view["temperature"] = config["temperature"]
    return view


class BedrockStandIn(StandInServer):
    """``with BedrockStandIn(brain) as bedrock: bedrock.endpoint_url`` -> ``http://127.0.0.1:N``."""

    def __init__(
        self,
        brain: Brain,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        ttft_s: float = 0.0,
        token_interval_s: float = 0.0,
        think_aloud: bool = False,
        history: int = 5000,
    ) -> None:
        self.brain = brain
        self.ttft_s = ttft_s
        self.token_interval_s = token_interval_s
        self.think_aloud = think_aloud
        self.completions = 0  # requests accepted and answered
        self.cancelled = 0  # streams the client closed before the end
        self.refused: list[str] = []  # ValidationException messages sent (a test wants none)
        self.requests: deque[tuple[str, dict[str, Any]]] = deque(maxlen=history)  # (model id, body)
        self.signers: deque[dict[str, str]] = deque(maxlen=history)  # who signed each request
        self._lock = threading.Lock()
        self._serve(_handler_for(self), host=host, port=port, name="bedrock-stand-in")

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def model_ids(self) -> list[str]:
        with self._lock:
            return [model for model, _ in self.requests]

    def record(self, what: Literal["completions", "cancelled"]) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def remember(self, model: str, body: dict[str, Any], signer: dict[str, str], refused: str | None) -> None:
        with self._lock:
            self.requests.append((model, body))
            self.signers.append(signer)
            if refused is not None:
                self.refused.append(refused)


class _Handler(BaseHTTPRequestHandler):
    stand_in: ClassVar[BedrockStandIn]

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._error(404, "UnknownOperationException", "Only ConverseStream is implemented here.")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        match = _PATH.match(self.path.split("?", 1)[0])
        if match is None:
            self._error(404, "UnknownOperationException", "Only ConverseStream is implemented here.")
            return
        signer = _signer(self.headers.get("Authorization", ""))
        if signer is None:
            self._error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "ValidationException", "The request body is not valid JSON.")
            return
        model = unquote(match.group("model"))
        problem = violation(model, body) if isinstance(body, dict) else "The request body must be a JSON object."
        self.stand_in.remember(model, body if isinstance(body, dict) else {}, signer, problem)
        if problem is not None:
            self._error(400, "ValidationException", problem)
            return
        reply = self.stand_in.brain.reply(openai_view(model, body))
        if reply.fault == "drop":
            self.close_connection = True
            self.connection.close()
            return
        if reply.fault == "status":
            error = reply.error or ERRORS_BY_STATUS.get(reply.status, "InternalServerException")
            self._error(reply.status, error, "Injected failure.")
            return
        self.stand_in.record("completions")
        self._stream(reply, input_tokens=max(1, len(raw) // 4))

    def _stream(self, reply: Reply, *, input_tokens: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", _request_id())
        self.end_headers()
        ttft = self.stand_in.ttft_s if reply.ttft_s is None else reply.ttft_s
        gap = self.stand_in.token_interval_s if reply.token_interval_s is None else reply.token_interval_s
        started = time.monotonic()
        try:
            self.wfile.flush()
            if reply.fault == "stall":
                self.stand_in.stopping.wait(60)  # the client's first-token timeout fires first
                return
            time.sleep(ttft)
            self._chunk(event("messageStart", {"role": "assistant"}))
            tokens = list(reply.tokens)
            if reply.tool_calls and self.stand_in.think_aloud:
                tokens = [*split_tokens(THINKING), *tokens]  # Nova thinks aloud before a tool call
            for i, token in enumerate(tokens):
                if reply.fault in ("cut", "exception") and i >= reply.cut_after:
                    self._break(reply)
                    return
                if i:
                    time.sleep(gap)
                self._chunk(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": token}}))
            if reply.fault in ("cut", "exception"):
                self._break(reply)
                return
            index = 0
            if tokens:
                self._chunk(event("contentBlockStop", {"contentBlockIndex": 0}))
                index = 1
            for n, call in enumerate(reply.tool_calls, start=index):
                self._tool_call(n, call.id or f"tooluse_{secrets.token_urlsafe(16)[:22]}", call.name, call.arguments)
            stop = "tool_use" if reply.tool_calls else "end_turn"
            self._chunk(event("messageStop", {"stopReason": stop}))
            output_tokens = len(tokens) + 8 * len(reply.tool_calls)
            usage = {"inputTokens": input_tokens, "outputTokens": output_tokens}
            usage["totalTokens"] = input_tokens + output_tokens
            latency = {"latencyMs": int((time.monotonic() - started) * 1000)}
            self._chunk(event("metadata", {"usage": usage, "metrics": latency}))
            self._raw(b"")  # the last chunk
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.stand_in.record("cancelled")
            self.close_connection = True

    def _tool_call(self, index: int, tool_use_id: str, name: str, arguments: Mapping[str, Any]) -> None:
        start = {"toolUse": {"toolUseId": tool_use_id, "name": name}}
        self._chunk(event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        text = json.dumps(dict(arguments))
        for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
            delta = {"toolUse": {"input": piece}}
            self._chunk(event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        self._chunk(event("contentBlockStop", {"contentBlockIndex": index}))

    def _break(self, reply: Reply) -> None:
        """The stream fails half-way: an exception event, or the connection just ends."""
        if reply.fault == "exception":
            self._chunk(exception_event(reply.error or "modelStreamErrorException", "Injected stream error."))
            self._raw(b"")
        self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self._raw(data)

    def _raw(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _error(self, status: int, error_type: str, message: str) -> None:
        data = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/")
        self.send_header("x-amzn-RequestId", _request_id())
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _handler_for(server: BedrockStandIn) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to ``server`` (``http.server`` builds one handler per request)."""
    return type("Handler", (_Handler,), {"stand_in": server})


def _signer(authorization: str) -> dict[str, str] | None:
    """Who signed the request, or None if it is not signed the way the service requires."""
    if authorization.startswith("Bearer ") and len(authorization) > len("Bearer "):
        return {"scheme": "bearer"}
    match = _CREDENTIAL.search(authorization)
    if not authorization.startswith("AWS4-HMAC-SHA256 ") or match is None or match.group("service") != "bedrock":
        return None
    return {"scheme": "sigv4", "access_key_id": match.group("key"), "region": match.group("region")}


def _request_id() -> str:
    return "-".join(secrets.token_hex(n) for n in (4, 2, 2, 2, 6))
