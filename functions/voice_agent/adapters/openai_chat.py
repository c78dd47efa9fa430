"""The language model through the ``openai`` SDK: streamed Chat Completions.

Chat Completions is the widest common denominator: OpenAI, and any OpenAI-compatible server
(``OPENAI_BASE_URL``: vLLM, Ollama, LM Studio, a gateway, the local demo model). The SDK is heavy
(about half a second to import), so it is imported only when a turn (or ``setup``'s warm-up)
first needs it, never on the ``$connect`` / ``$disconnect`` / interrupt paths.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voice_agent.core.model import ChatMessage, ChatRequest, StreamEvent, StreamFinished, TextDelta, ToolCall
from voice_agent.errors import LLMError
from voice_agent.log import logger

if TYPE_CHECKING:
    from openai import OpenAI, Stream
    from openai.types.chat import ChatCompletionChunk
    from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

NO_KEY = "no-key"  # OpenAI-compatible servers that need no key still want a non-empty header


def to_openai_messages(messages: list[ChatMessage] | tuple[ChatMessage, ...] | Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": m.content or None,
                    "tool_calls": [
                        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": m.role, "content": m.content})
    return out


@dataclass(slots=True)
class _PartialCall:
    """One tool call as its chunks arrive: the id once, the name and the arguments in pieces."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def add(self, chunk: ChoiceDeltaToolCall) -> None:
        self.id = chunk.id or self.id
        if chunk.function is not None:
            self.name += chunk.function.name or ""
            if chunk.function.arguments:
                self.arguments.append(chunk.function.arguments)


class OpenAIChatStream:
    def __init__(self, stream: Stream[ChatCompletionChunk]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[StreamEvent]:
        calls: dict[int, _PartialCall] = {}
        finish: str | None = None
        try:
            for chunk in self._stream:
                if not chunk.choices:
                    continue  # usage-only chunks from some servers
                choice = chunk.choices[0]
                delta = choice.delta
                if delta is not None and delta.content:
                    yield TextDelta(delta.content)
                for tc in (delta.tool_calls if delta is not None else None) or ():
                    calls.setdefault(tc.index, _PartialCall()).add(tc)
                if choice.finish_reason:
                    finish = choice.finish_reason
        except GeneratorExit:
            raise
        except Exception as exc:  # the SDK and its transport raise many types; all mean "broken"
            raise LLMError(f"stream failed: {type(exc).__name__}") from exc
        done = tuple(
            ToolCall(id=p.id or f"call_{i}", name=p.name, arguments="".join(p.arguments) or "{}")
            for i, p in sorted(calls.items())
            if p.name
        )
        yield StreamFinished(finish_reason=finish, tool_calls=done)

    def close(self) -> None:
        try:
            self._stream.close()
        except Exception:  # closing a broken stream may raise; it is closed either way
            logger.debug("llm stream close raised", exc_info=True)


class OpenAIChatModel:
    def __init__(
        self,
        *,
        model: str,
        api_key: Callable[[], str | None],
        base_url: str | None,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_retries: int = 1,
        warm_connection: bool = True,
    ) -> None:
        self._model = model
        self._api_key = api_key
        self._base_url = base_url
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max_retries = max_retries
        self._warm_connection = warm_connection
        self._client: OpenAI | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self._model

    def client(self) -> OpenAI:
        with self._lock:
            if self._client is None:
                import openai  # heavy: only on paths that talk to the model

                key = self._api_key()
                if not key and not self._base_url:
                    raise LLMError("OPENAI_API_KEY is not set (and no OPENAI_BASE_URL)")
                self._client = openai.OpenAI(
                    api_key=key or NO_KEY,
                    base_url=self._base_url,
                    timeout=openai.Timeout(self._read_timeout_s, connect=self._connect_timeout_s, write=5.0, pool=2.0),
                    max_retries=self._max_retries,
                )
            return self._client

    def warm(self) -> None:
        try:
            client = self.client()
            client.chat.completions  # noqa: B018 (the SDK imports the chat resources on first access)
            if self._warm_connection:
                # A free request that opens (and pools) the TLS connection the first turn reuses.
                client.with_options(timeout=2.0, max_retries=0).models.list()
        except Exception as exc:  # warming is best effort
            logger.info("llm warm-up skipped", extra={"error": type(exc).__name__})

    def stream(self, request: ChatRequest) -> OpenAIChatStream:
        params: dict[str, Any] = {
            "model": self._model,
            "messages": to_openai_messages(request.messages),
            "stream": True,
        }
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": dict(t.parameters)},
                }
                for t in request.tools
            ]
        if request.max_tokens is not None:
            params["max_completion_tokens"] = request.max_tokens
        if request.temperature is not None:
            params["temperature"] = request.temperature
        try:
            stream = self.client().chat.completions.create(**params)
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(f"request failed: {type(exc).__name__}") from exc
        return OpenAIChatStream(stream)
