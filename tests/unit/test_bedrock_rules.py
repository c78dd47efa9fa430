"""The stand-in's rules refuse what ConverseStream refuses (so a test that passes them means something)."""

from __future__ import annotations

from typing import Any

import pytest

from local import bedrock_rules as rules

MODEL = "us.amazon.nova-lite-v1:0"
TOOLS = {"tools": [{"toolSpec": {"name": "lookup_order", "inputSchema": {"json": {"type": "object"}}}}]}


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(t: str) -> dict[str, Any]:
    return {"text": t}


def use(tool_use_id: str, name: str = "lookup_order", args: Any = None) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": tool_use_id, "name": name, "input": {} if args is None else args}}


def result(tool_use_id: str, content: str = "ok") -> dict[str, Any]:
    return {"toolResult": {"toolUseId": tool_use_id, "content": [{"text": content}]}}


VALID: dict[str, Any] = {
    "system": [text("You are Ada.")],
    "messages": [
        user(text("(The call is connected.)")),
        assistant(text("Hi!")),
        user(text("Where is order 1001?")),
        assistant(text("Let me look."), use("t1")),
        user(result("t1"), text("Thanks.")),
    ],
    "toolConfig": TOOLS,
    "inferenceConfig": {"maxTokens": 300, "temperature": 0.5},
}


def test_a_well_formed_conversation_is_accepted() -> None:
    assert rules.violation(MODEL, VALID) is None
    assert rules.violation("amazon.nova-lite-v1:0", {"messages": [user(text("hi"))]}) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": []}, rules.START_WITH_USER),
        ({"messages": [assistant(text("Hi")), user(text("hello"))]}, rules.START_WITH_USER),
        ({"messages": [user(text("a")), user(text("b"))]}, rules.ALTERNATE),
        ({"messages": [user(text("a")), assistant(text("b"))]}, rules.END_WITH_USER),
        ({"messages": [user(text("   "))]}, "The text field in the ContentBlock object at messages.0.content.0 is"),
        ({"messages": [user()]}, "The content field in the Message object at messages.0 is empty"),
        ({"messages": [user(text("a")), assistant(use("t1")), user(result("t1"))]}, rules.TOOL_CONFIG_REQUIRED),
        (
            {"messages": [user(text("a")), assistant(use("t1")), user(text("b"))], "toolConfig": TOOLS},
            "Expected toolResult blocks at messages.2.content for the following Ids: t1",
        ),
        (
            {"messages": [user(text("a")), assistant(text("b")), user(result("t1"))], "toolConfig": TOOLS},
            "The number of toolResult blocks at messages.2.content exceeds",
        ),
        (
            {"messages": [user(text("a")), assistant(use("t1")), user(text("b"), result("t1"))], "toolConfig": TOOLS},
            "toolResult blocks must come before",
        ),
        (
            {"messages": [user(text("a")), assistant(use("call 1")), user(result("call 1"))], "toolConfig": TOOLS},
            "toolUseId' failed to satisfy constraint",
        ),
        (
            {
                "messages": [
                    user(text("a")),
                    assistant(use("t1")),
                    user(result("t1")),
                    assistant(use("t1")),
                    user(result("t1")),
                ],
                "toolConfig": TOOLS,
            },
            "toolUse ids must be unique",
        ),
        (
            {"messages": [user(text("a")), assistant(use("t1", args=[1])), user(result("t1"))], "toolConfig": TOOLS},
            "must be a JSON object",
        ),
        (
            {"messages": [user(text("a")), assistant(use("t1")), user(result("t1", " "))], "toolConfig": TOOLS},
            "ToolResultContentBlock object at messages.2.content.0.toolResult.content.0 is blank",
        ),
        ({"messages": [user(text("a"))], "system": [text(" ")]}, "SystemContentBlock object at system.0 is blank"),
        ({"messages": [user(text("a"))], "inferenceConfig": {"temperature": 1.5}}, "less than or equal to 1"),
        ({"messages": [user(text("a"))], "inferenceConfig": {"maxTokens": 0}}, "greater than or equal to 1"),
        ({"messages": [user(text("a"))], "toolConfig": {"tools": []}}, "toolConfig.tools"),
    ],
)
def test_what_the_service_refuses_is_refused(body: dict[str, Any], expected: str) -> None:
    problem = rules.violation(MODEL, body)
    assert problem is not None
    assert expected in problem


def test_an_unknown_model_id_shape_is_refused() -> None:
    assert rules.violation("not a model", VALID) == rules.INVALID_MODEL
