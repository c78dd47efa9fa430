from __future__ import annotations

import json
from typing import Annotated, Literal

import pytest

from voice_agent.agent.config import AGENT
from voice_agent.core.builtin_tools import BUILTIN_TOOLS, send_digits, switch_language, transfer_to_human
from voice_agent.core.tools import EndSession, SendDigitsEffect, SwitchLanguage, ToolContext, ToolRegistry, tool
from voice_agent.errors import ConfigurationError, ToolError


def ctx(direction: str = "inbound") -> ToolContext:
    return ToolContext(call_sid="CA1", connection_id="c1", direction=direction, language="en-US", agent=AGENT)


@tool
def book(
    day: Annotated[Literal["mon", "tue"], "The day"],
    people: Annotated[int, "How many"],
    note: str | None = None,
    vip: bool = False,
    tags: list[str] | None = None,
) -> dict[str, object]:
    """Book a table.

    More details the model does not need."""
    return {"day": day, "people": people, "note": note, "vip": vip, "tags": tags}


def test_schema_is_generated_from_the_signature() -> None:
    assert book.name == "book"
    assert book.description == "Book a table."
    assert book.parameters == {
        "type": "object",
        "properties": {
            "day": {"type": "string", "enum": ["mon", "tue"], "description": "The day"},
            "people": {"type": "integer", "description": "How many"},
            "note": {"type": "string"},
            "vip": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["day", "people"],
        "additionalProperties": False,
    }


def test_context_parameter_is_hidden_from_the_model_and_passed_in() -> None:
    assert book.context_param is None

    @tool
    def whoami(c: ToolContext) -> str:
        """Say who is calling."""
        return c.call_sid

    assert whoami.parameters["properties"] == {}
    assert whoami.invoke("{}", ctx()).content == "CA1"


def test_arguments_are_checked_and_coerced() -> None:
    @tool
    def add(a: int, b: float) -> float:
        """Add."""
        return a + b

    assert add.invoke('{"a": "2", "b": 0.5}', ctx()).content == "2.5"
    for bad in ['{"a": 1}', '{"a": "x", "b": 1}', "not json", "[1]", '{"a": true, "b": 1}', '{"a": 1.5, "b": 1}']:
        with pytest.raises(ToolError):
            add.invoke(bad, ctx())


def test_enum_values_are_enforced() -> None:
    with pytest.raises(ToolError):
        book.invoke('{"day": "sun", "people": 2}', ctx())
    result = json.loads(book.invoke('{"day": "mon", "people": 2, "extra": 1}', ctx()).content)
    assert result["day"] == "mon"


@pytest.mark.parametrize(
    "bad",
    [
        "def f(x): '''Doc.'''",
        "def f(x: dict) -> str: '''Doc.'''",
        "def f(x: int | str) -> str: '''Doc.'''",
        "def f(x: int) -> str: pass",
    ],
)
def test_unsupported_tool_definitions_fail_at_start_up(bad: str) -> None:
    namespace: dict[str, object] = {}
    exec(bad, namespace)  # noqa: S102 (test input)
    with pytest.raises(ConfigurationError):
        tool(namespace["f"])  # type: ignore[call-overload]


def test_registry_rejects_duplicates_and_filters_by_direction() -> None:
    with pytest.raises(ConfigurationError):
        ToolRegistry.of([book, book])
    registry = ToolRegistry.of(BUILTIN_TOOLS)
    inbound = {t.name for t in registry.offered(AGENT, "inbound")}
    outbound = {t.name for t in registry.offered(AGENT, "outbound-api")}
    assert "send_digits" not in inbound
    assert "send_digits" in outbound
    with pytest.raises(ToolError):
        registry.get("nope")


def test_transfer_to_human_asks_to_end_with_handoff_data() -> None:
    result = transfer_to_human.invoke('{"reason": "wants a refund"}', ctx())
    (effect,) = result.effects
    assert isinstance(effect, EndSession)
    assert effect.handoff == {"reasonCode": "live-agent-handoff", "reason": "wants a refund"}
    assert effect.line == AGENT.lines.handoff


def test_switch_language_offers_only_configured_languages() -> None:
    spec = switch_language.spec(AGENT)
    assert spec.parameters["properties"]["language"]["enum"] == [o.code for o in AGENT.languages]
    assert switch_language.invoke('{"language": "es-es"}', ctx()).effects == (SwitchLanguage("es-ES"),)
    with pytest.raises(ToolError):
        switch_language.invoke('{"language": "fr-FR"}', ctx())


def test_send_digits_validates_keys() -> None:
    assert send_digits.invoke('{"digits": "1w2#"}', ctx("outbound-api")).effects == (SendDigitsEffect("1w2#"),)
    with pytest.raises(ToolError):
        send_digits.invoke('{"digits": "call me"}', ctx("outbound-api"))
