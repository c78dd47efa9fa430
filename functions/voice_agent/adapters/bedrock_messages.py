"""A provider-neutral ``ChatRequest`` as the arguments of Bedrock's ``converse_stream``.

Bedrock checks the shape of a conversation far more strictly than OpenAI does, and refuses the
whole request (``ValidationException``) when a rule is broken; a phone call must never meet that.
So every sequence of messages this project can produce, and any other, maps to a request the
service accepts (docs/models.md cites each rule; ``tests/unit/test_bedrock_messages.py`` holds
each one and a property test holds all of them at once, against the rules the local stand-in
enforces, ``local/bedrock_rules.py``):

1. System messages go to ``system``; the conversation holds only ``user`` and ``assistant``.
2. Blank or whitespace-only text is dropped (the service refuses a blank text block), and so is a
   message left with no content.
3. A ``toolUse`` is kept only if the tool messages right after it answer it, and a tool result
   only if it answers a kept ``toolUse`` of the message right before it. The results go, first,
   into the next user message (``toolResult`` blocks). Ids and names are made to fit the
   service's patterns, and an id is never used twice in a request.
4. Consecutive messages of one role become one message (roles must alternate); their texts are
   joined into one block. A turn that was superseded before it spoke leaves two caller messages
   in a row; a reconnect greeting follows the agent's last words: both merge.
5. The conversation starts with a user message: a history that starts with the greeting (on a
   phone the agent speaks first) gets a short note in the user role before it, and one that
   would end with the agent gets a note after it. Caller speech only ever travels in the user role;
   the notes are in parentheses, like the key-press note.
6. ``toolConfig`` is sent only with tools offered. The service refuses ``toolUse`` or
   ``toolResult`` blocks without it, so a request offering no tools (the turn engine's last tool
   round) carries the earlier tool exchanges as notes in the user role instead.
7. ``temperature`` is clamped to Bedrock's 0..1.

Pure: no boto3, no network (unit tests run it without sockets).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from voice_agent.core.model import ChatMessage, ChatRequest, ToolCall

Role = Literal["user", "assistant"]
Block = dict[str, Any]

CALL_START_NOTE: Final = "(The call is connected.)"
CONTINUE_NOTE: Final = "(Go on.)"
EMPTY_RESULT: Final = "(no result)"
TEXT_JOIN: Final = "\n\n"
MAX_TEMPERATURE: Final = 1.0

# The strictest of the patterns the API reference has published for these fields.
TOOL_USE_ID: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_NAME: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,63}$")


@dataclass(slots=True)
class _Message:
    role: Role
    blocks: list[Block] = field(default_factory=list)


def converse_arguments(model_id: str, request: ChatRequest) -> dict[str, Any]:
    """The keyword arguments of ``converse_stream`` for ``request`` (always a valid request)."""
    use_tools = bool(request.tools)
    system = [{"text": m.content} for m in request.messages if m.role == "system" and _has_text(m.content)]
    messages = _alternate(_with_tools(request.messages, use_tools))
    arguments: dict[str, Any] = {"modelId": model_id, "messages": [_wire(m) for m in messages]}
    if system:
        arguments["system"] = system
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = max(1, request.max_tokens)
    if request.temperature is not None:
        inference["temperature"] = min(max(request.temperature, 0.0), MAX_TEMPERATURE)
    if inference:
        arguments["inferenceConfig"] = inference
    if use_tools:
        arguments["toolConfig"] = {"tools": _tool_specs(request)}
    return arguments


# -- step 1-3 and 6: messages to blocks, tool exchanges paired (or turned into notes) -------------


def _with_tools(messages: Sequence[ChatMessage], use_tools: bool) -> list[_Message]:
    items = [m for m in messages if m.role != "system"]
    ids = _Ids()
    out: list[_Message] = []
    i = 0
    while i < len(items):
        message = items[i]
        i += 1
        if message.role == "user":
            out.append(_Message("user", _text_blocks(message.content)))
        elif message.role == "assistant":
            results: list[ChatMessage] = []
            while i < len(items) and items[i].role == "tool":
                results.append(items[i])
                i += 1
            out.extend(_exchange(message, results, ids, use_tools))
        # A tool message not right after a tool call answers nothing: dropped.
    return out


def _exchange(call: ChatMessage, results: list[ChatMessage], ids: _Ids, use_tools: bool) -> list[_Message]:
    """An assistant message and the tool messages right after it."""
    answers: dict[str, ChatMessage] = {}
    for result in results:
        if result.tool_call_id is not None:
            answers.setdefault(result.tool_call_id, result)
    calls: list[ToolCall] = []
    for c in call.tool_calls:
        if c.id in answers and all(c.id != kept.id for kept in calls):
            calls.append(c)
    spoken = _Message("assistant", _text_blocks(call.content))
    if not calls:
        return [spoken]
    if not use_tools:
        notes = [_tool_note(c, answers[c.id].content) for c in calls]
        return [spoken, _Message("user", [{"text": note} for note in notes])]
    uses: list[Block] = []
    returns: list[Block] = []
    for c in calls:
        tool_use_id = ids.fresh(c.id)
        uses.append({"toolUse": {"toolUseId": tool_use_id, "name": _tool_name(c.name), "input": _tool_input(c)}})
        content = answers[c.id].content if _has_text(answers[c.id].content) else EMPTY_RESULT
        returns.append({"toolResult": {"toolUseId": tool_use_id, "content": [{"text": content}]}})
    spoken.blocks.extend(uses)
    return [spoken, _Message("user", returns)]


def _tool_note(call: ToolCall, content: str) -> str:
    arguments = json.dumps(_tool_input(call), separators=(",", ":"), ensure_ascii=False)
    result = content if _has_text(content) else EMPTY_RESULT
    return f"(The tool {_tool_name(call.name)} was called with {arguments} and returned: {result})"


def _tool_input(call: ToolCall) -> dict[str, Any]:
    """The arguments as the JSON object Bedrock wants (what the model wrote, when it was one)."""
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _tool_name(name: str) -> str:
    if TOOL_NAME.match(name):
        return name
    cleaned = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    if not cleaned[:1].isalpha():
        cleaned = "tool_" + cleaned
    return cleaned[:64]


class _Ids:
    """Tool-use ids as Bedrock accepts them, unique within one request."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def fresh(self, raw: str) -> str:
        candidate = raw if TOOL_USE_ID.match(raw) else _digest_id(raw)
        n = 1
        while candidate in self._used:
            n += 1
            suffix = f"_{n}"
            candidate = candidate[: 64 - len(suffix)] + suffix
        self._used.add(candidate)
        return candidate


def _digest_id(raw: str) -> str:
    kept = re.sub(r"[^a-zA-Z0-9_-]", "", raw)[:40]
    return f"{kept}_{hashlib.sha256(raw.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}".lstrip("_")


def _text_blocks(text: str) -> list[Block]:
    return [{"text": text}] if _has_text(text) else []


def _has_text(text: str) -> bool:
    return bool(text and text.strip())


# -- steps 4 and 5: one message per role in turn, user first and last ----------------------------


def _alternate(messages: list[_Message]) -> list[_Message]:
    merged: list[_Message] = []
    for message in messages:
        if not message.blocks:
            continue
        if merged and merged[-1].role == message.role:
            merged[-1].blocks.extend(message.blocks)
        else:
            merged.append(_Message(message.role, list(message.blocks)))
    if not merged or merged[0].role != "user":
        merged.insert(0, _Message("user", [{"text": CALL_START_NOTE}]))
    if merged[-1].role != "user":
        merged.append(_Message("user", [{"text": CONTINUE_NOTE}]))
    for message in merged:
        message.blocks = _join_texts(message.blocks)
    return merged


def _join_texts(blocks: list[Block]) -> list[Block]:
    """Adjacent text blocks as one (tool blocks keep their place)."""
    out: list[Block] = []
    for block in blocks:
        if "text" in block and out and "text" in out[-1]:
            out[-1] = {"text": out[-1]["text"] + TEXT_JOIN + block["text"]}
        else:
            out.append(block)
    return out


def _wire(message: _Message) -> dict[str, Any]:
    return {"role": message.role, "content": message.blocks}


def _tool_specs(request: ChatRequest) -> list[Block]:
    specs: list[Block] = []
    seen: set[str] = set()
    for tool in request.tools:
        name = _tool_name(tool.name)
        if name in seen:
            continue
        seen.add(name)
        spec: Block = {"name": name, "inputSchema": {"json": dict(tool.parameters)}}
        if tool.description.strip():
            spec["description"] = tool.description
        specs.append({"toolSpec": spec})
    return specs
