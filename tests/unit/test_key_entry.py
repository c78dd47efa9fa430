"""Key entry's rules: when an entry is complete, what the model reads and what a transcript shows."""

from __future__ import annotations

import json

import pytest

from voice_agent.agent.config import AGENT
from voice_agent.core.key_entry import collect_keys, finished, finished_note, unfinished_note
from voice_agent.core.model import KeyState
from voice_agent.core.tools import StartKeyEntry, ToolContext
from voice_agent.errors import ToolError


def state(keys: str, count: int = 0) -> KeyState:
    return KeyState(call_sid="CA1", entry=3, generation=9, count=count, reprompts=0, keys=tuple(keys))


@pytest.mark.parametrize(
    ("keys", "count", "done"),
    [
        ("123", 4, False),
        ("1234", 4, True),  # the count is reached
        ("12#", 4, True),  # pound ends a counted entry early
        ("1234567", 0, False),  # until pound
        ("1234567#", 0, True),
        ("#", 0, True),
        ("0", 0, False),  # 0 is a key here, not the human key
    ],
)
def test_an_entry_is_complete_at_its_count_or_at_pound(keys: str, count: int, done: bool) -> None:
    assert finished(state(keys, count), max_keys=32) is done


def test_an_entry_until_pound_stops_at_max_keys() -> None:
    assert finished(state("1" * 31), max_keys=32) is False
    assert finished(state("1" * 32), max_keys=32) is True


def test_the_model_reads_the_keys_the_transcript_their_count() -> None:
    assert finished_note(tuple("12345678#")) == ("(The caller keyed in: 12345678)", "(keyed in 8 keys)")
    assert finished_note(("#",))[0] == "(The caller pressed pound without keying anything in.)"
    assert unfinished_note(("1", "2")) == (
        "(The caller stopped keying in after: 12)",
        "(stopped keying in after 2 keys)",
    )
    assert unfinished_note(()) == ("(The caller did not key anything in.)", "(keyed nothing in)")


def ctx(language: str | None = None) -> ToolContext:
    return ToolContext(call_sid="CA1", connection_id="c1", direction="inbound", language=language, agent=AGENT)


def test_the_tool_starts_an_entry_with_the_models_line_or_the_agents() -> None:
    result = collect_keys.invoke(json.dumps({"prompt": "Please key in your account number.", "count": 8}), ctx())
    assert result.effects == (StartKeyEntry(line="Please key in your account number.", count=8),)
    blank = collect_keys.invoke(json.dumps({"prompt": " "}), ctx("es-ES"))
    assert blank.effects == (StartKeyEntry(line=AGENT.timing.lines_for("es-ES", "en-US").key_prompt, count=0),)
    with pytest.raises(ToolError):
        collect_keys.invoke(json.dumps({"prompt": "Key it in", "count": 500}), ctx())
