"""What Bedrock's ConverseStream refuses, as the local stand-in enforces it.

:func:`violation` returns the message the real service answers a refused request with (a
``ValidationException``), or ``None`` for a request it accepts. The stand-in
(``local/bedrock_server.py``) refuses what this refuses, so a history the real service would
refuse fails the tests and the demo instead of a call in production; the property test in
``tests/unit/test_bedrock_messages.py`` runs every generated history through it.

Where each rule and message comes from is in docs/models.md ("What ConverseStream refuses"). Two
rules are stricter than some models are: a conversation must end with a user message (Claude and
Nova accept a final assistant message as a prefill; others refuse it) and tool results come first
in their message (Claude's rule). The project never needs either, so holding every model to them
costs nothing and keeps any model in the chain safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Final

from voice_agent.model_choice import BEDROCK_MODEL_ARN, BEDROCK_MODEL_ID

TOOL_USE_ID: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_NAME: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,63}$")
ROLES: Final = ("user", "assistant")
CONTENT_KINDS: Final = ("text", "toolUse", "toolResult", "image", "document", "video", "reasoningContent")

START_WITH_USER: Final = (
    "A conversation must start with a user message. Try again with a conversation that starts with a user message."
)
ALTERNATE: Final = (
    "A conversation must alternate between user and assistant roles. Make sure the conversation alternates "
    "between user and assistant roles and try again."
)
END_WITH_USER: Final = (
    "A conversation must end with a user message. Try again with a conversation that ends with a user message."
)
NAME_RULE: Final = f"Member must satisfy regular expression pattern: {TOOL_NAME.pattern}"
ID_RULE: Final = "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"
TOOL_CONFIG_REQUIRED: Final = "The toolConfig field must be defined when using toolUse and toolResult content blocks."
INVALID_MODEL: Final = "The provided model identifier is invalid."


def blank(where: str, block: str = "ContentBlock") -> str:
    return f"The text field in the {block} object at {where} is blank. Add text to the text field, and try again."


def constraint(value: Any, where: str, rule: str) -> str:
    return f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy constraint: {rule}"


def violation(model_id: str, body: Mapping[str, Any]) -> str | None:
    """The ValidationException message for this request, or None if the service accepts it."""
    if not (BEDROCK_MODEL_ID.match(model_id) or BEDROCK_MODEL_ARN.match(model_id)):
        return INVALID_MODEL
    for check in (_system, _inference, _tool_config, _messages):
        problem = check(body)
        if problem is not None:
            return problem
    return None


def _system(body: Mapping[str, Any]) -> str | None:
    system = body.get("system", [])
    if not isinstance(system, list):
        return constraint(system, "system", "Member must be a list")
    for k, block in enumerate(system):
        if not isinstance(block, Mapping):
            return constraint(block, f"system.{k}", "Member must be a structure")
        if "text" in block and not _filled(block["text"]):
            return blank(f"system.{k}", "SystemContentBlock")
    return None


def _inference(body: Mapping[str, Any]) -> str | None:
    config = body.get("inferenceConfig") or {}
    tokens = config.get("maxTokens")
    if tokens is not None and (not isinstance(tokens, int) or tokens < 1):
        return constraint(tokens, "inferenceConfig.maxTokens", "Member must have value greater than or equal to 1")
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or value < 0:
            return constraint(value, f"inferenceConfig.{name}", "Member must have value greater than or equal to 0")
        if value > 1:
            return constraint(value, f"inferenceConfig.{name}", "Member must have value less than or equal to 1")
    return None


def _tool_config(body: Mapping[str, Any]) -> str | None:
    config = body.get("toolConfig")
    if config is None:
        return None
    tools = config.get("tools") if isinstance(config, Mapping) else None
    if not isinstance(tools, list) or not tools:
        return constraint("[]", "toolConfig.tools", "Member must have length greater than or equal to 1")
    names: set[str] = set()
    for n, tool in enumerate(tools):
        spec = tool.get("toolSpec") if isinstance(tool, Mapping) else None
        if not isinstance(spec, Mapping):
            return constraint(tool, f"toolConfig.tools.{n}", "Member must be a Tool with a toolSpec")
        name = spec.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            return constraint(name, f"toolConfig.tools.{n}.member.toolSpec.name", NAME_RULE)
        if name in names:
            return f"The toolConfig field contains duplicate tool names: {name}. Tool names must be unique."
        names.add(name)
        schema = (spec.get("inputSchema") or {}).get("json")
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            return f"The input schema of tool {name} must be a JSON schema of type object."
    return None


def _messages(body: Mapping[str, Any]) -> str | None:
    """The conversation's rules, in the service's order: each message's shape, who speaks first and
    in turn, tool blocks where they belong and answered, and who speaks last."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return START_WITH_USER
    problem = next((p for i, m in enumerate(messages) if (p := _message_shape(i, m)) is not None), None)
    if problem is not None:
        return problem
    if messages[0]["role"] != "user":
        return START_WITH_USER
    if any(a["role"] == b["role"] for a, b in pairwise(messages)):
        return ALTERNATE
    uses_tools = any(_kind(block) in ("toolUse", "toolResult") for m in messages for block in m["content"])
    if uses_tools and body.get("toolConfig") is None:
        return TOOL_CONFIG_REQUIRED
    seen_ids: set[str] = set()
    for i, message in enumerate(messages):
        problem = _tool_blocks(i, message, seen_ids) or _answers(messages, i)
        if problem is not None:
            return problem
    return END_WITH_USER if messages[-1]["role"] != "user" else None


def _tool_blocks(i: int, message: Mapping[str, Any], seen_ids: set[str]) -> str | None:
    """toolUse only from the assistant, toolResult only from the user, each toolUse well formed."""
    for j, block in enumerate(message["content"]):
        kind = _kind(block)
        if kind == "toolUse" and message["role"] != "assistant":
            return f"messages.{i}.content.{j}: toolUse blocks are only allowed in assistant messages."
        if kind == "toolResult" and message["role"] != "user":
            return f"messages.{i}.content.{j}: toolResult blocks are only allowed in user messages."
        if kind == "toolUse":
            problem = _tool_use(i, j, block["toolUse"], seen_ids)
            if problem is not None:
                return problem
    return None


def _message_shape(i: int, message: Any) -> str | None:
    if not isinstance(message, Mapping):
        return constraint(message, f"messages.{i}", "Member must be a structure")
    if message.get("role") not in ROLES:
        return constraint(
            message.get("role"), f"messages.{i}.member.role", "Member must satisfy enum value set: [user, assistant]"
        )
    content = message.get("content")
    if not isinstance(content, list) or not content:
        return (
            f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the "
            "content field and try again."
        )
    for j, block in enumerate(content):
        if not isinstance(block, Mapping) or len(block) != 1 or _kind(block) not in CONTENT_KINDS:
            rule = "Member must be a ContentBlock with one member"
            return constraint(block, f"messages.{i}.member.content.{j}", rule)
        if _kind(block) == "text" and not _filled(block["text"]):
            return blank(f"messages.{i}.content.{j}")
        if _kind(block) == "toolResult":
            problem = _tool_result_shape(i, j, block["toolResult"])
            if problem is not None:
                return problem
    return None


def _tool_use(i: int, j: int, use: Any, seen_ids: set[str]) -> str | None:
    where = f"messages.{i}.member.content.{j}.member.toolUse"
    if not isinstance(use, Mapping):
        return constraint(use, where, "Member must be a structure")
    tool_use_id, name = use.get("toolUseId"), use.get("name")
    if not isinstance(tool_use_id, str) or not TOOL_USE_ID.match(tool_use_id):
        return constraint(tool_use_id, f"{where}.toolUseId", ID_RULE)
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        return constraint(name, f"{where}.name", NAME_RULE)
    if not isinstance(use.get("input"), Mapping):
        return f"The input field of the toolUse block at messages.{i}.content.{j} must be a JSON object."
    if tool_use_id in seen_ids:
        return f"messages.{i}.content.{j}: toolUse ids must be unique; {tool_use_id} is used twice."
    seen_ids.add(tool_use_id)
    return None


def _tool_result_shape(i: int, j: int, result: Any) -> str | None:
    if not isinstance(result, Mapping) or not isinstance(result.get("toolUseId"), str):
        return constraint(result, f"messages.{i}.member.content.{j}.member.toolResult", "Member must have a toolUseId")
    content = result.get("content")
    if not isinstance(content, list) or not content:
        return f"The content field of the toolResult block at messages.{i}.content.{j} is empty."
    for k, part in enumerate(content):
        if isinstance(part, Mapping) and "text" in part and not _filled(part["text"]):
            return blank(f"messages.{i}.content.{j}.toolResult.content.{k}", "ToolResultContentBlock")
    return None


def _answers(messages: Sequence[Mapping[str, Any]], i: int) -> str | None:
    """Each toolUse of message i is answered in message i+1; each toolResult of message i answers
    a toolUse of message i-1, and the results come first."""
    message = messages[i]
    if message["role"] == "assistant":
        asked = [b["toolUse"]["toolUseId"] for b in message["content"] if _kind(b) == "toolUse"]
        if asked:
            following = messages[i + 1]["content"] if i + 1 < len(messages) else []
            answered = {b["toolResult"]["toolUseId"] for b in following if _kind(b) == "toolResult"}
            missing = ", ".join(a for a in asked if a not in answered)
            if missing:
                return f"Expected toolResult blocks at messages.{i + 1}.content for the following Ids: {missing}"
        return None
    results = [b["toolResult"]["toolUseId"] for b in message["content"] if _kind(b) == "toolResult"]
    if not results:
        return None
    previous = messages[i - 1]["content"] if i > 0 else []
    asked_before = [b["toolUse"]["toolUseId"] for b in previous if _kind(b) == "toolUse"]
    if len(results) > len(asked_before) or len(set(results)) != len(results):
        return (
            f"The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of "
            "previous turn."
        )
    unknown = [r for r in results if r not in asked_before]
    if unknown:
        return f"Expected toolResult blocks at messages.{i}.content for the following Ids: {', '.join(asked_before)}"
    kinds = [_kind(b) for b in message["content"]]
    if kinds[: len(results)] != ["toolResult"] * len(results):
        return f"messages.{i}: toolResult blocks must come before any other content in the message."
    return None


def _kind(block: Mapping[str, Any]) -> str:
    return next(iter(block), "")


def _filled(text: Any) -> bool:
    return isinstance(text, str) and bool(text.strip())
