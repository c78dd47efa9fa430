"""Key entry: several keys become one model turn (a count, or until #), with a timeout and a spoken
re-prompt, through the real relay, engine, timer handler and store (moto)."""

from __future__ import annotations

import io
import json

import pytest

from tests.integration.test_silence import CALL, LINES, Rig
from tests.integration.test_turn_engine import CONN, budget
from tests.support.fakes import ScriptedReply
from voice_agent.adapters.dynamo_store import DynamoSessionStore
from voice_agent.core.model import ChatMessage, ToolCall
from voice_agent.protocol.outbound import End, Text

ASK = "Please key in your account number."


@pytest.fixture
def rig(store: DynamoSessionStore) -> Rig:
    rig = Rig(store)
    rig.frame(f'{{"type": "setup", "sessionId": "VX1", "callSid": "{CALL}", "direction": "inbound"}}')
    return rig


def ask_for_keys(rig: Rig, count: int | None = None) -> None:
    arguments = {"prompt": ASK, **({"count": count} if count else {})}
    rig.model.replies.append(ScriptedReply(tool_calls=[ToolCall("k1", "collect_keys", json.dumps(arguments))]))
    rig.say("I'd like to check my account.")


def key(rig: Rig, digit: str) -> None:
    rig.frame(json.dumps({"type": "dtmf", "digit": digit}))


def last_user(rig: Rig) -> ChatMessage:
    return [m for m in rig.model.requests[-1].messages if m.role == "user"][-1]


def test_a_counted_entry_is_one_model_turn(rig: Rig) -> None:
    ask_for_keys(rig, count=4)
    assert rig.last() == Text(ASK, last=True)  # the line, and the turn is over
    assert len(rig.model.requests) == 1
    before = len(rig.sender.messages)
    for digit in "907":
        key(rig, digit)  # 0 is a key here, not the human key
    assert len(rig.model.requests) == 1 and rig.sender.messages[before:] == []  # no turn per key
    assert [t.kind for t, _ in rig.timers.timers[-3:]] == ["keys"] * 3  # each key restarts the pause
    rig.model.say("Thanks, that account is active.")
    key(rig, "3")
    assert len(rig.model.requests) == 2
    assert last_user(rig).content == "(The caller keyed in: 9073)"
    assert rig.sender.spoken(CONN).endswith("Thanks, that account is active.")
    assert not any(isinstance(m, End) for _, m in rig.sender.messages)  # no transfer for the 0
    stored = [r for r in rig.store.all_turns(CALL) if r.role == "user"]
    assert stored[-1].shown == "(keyed in 4 keys)"  # the transcript shows the count


def test_an_entry_until_pound(rig: Rig) -> None:
    ask_for_keys(rig)
    for digit in "24680":
        key(rig, digit)
    assert len(rig.model.requests) == 1
    key(rig, "#")
    assert last_user(rig).content == "(The caller keyed in: 24680)"
    key(rig, "5")  # after the entry: an ordinary key press, its own turn
    assert last_user(rig).content == AGENT_DTMF_NOTE.format(digit="5")


def test_a_pause_gets_the_reprompt_then_the_entry_ends_with_what_came(rig: Rig) -> None:
    ask_for_keys(rig, count=6)
    key(rig, "1")
    key(rig, "2")
    assert rig.fire("keys") == "reprompted"
    assert rig.last() == Text(LINES.key_reprompt, last=True)
    rig.model.say("No problem, we can do it another way.")
    assert rig.fire("keys") == "keys_unfinished"  # one re-prompt (the default), then the turn
    assert last_user(rig).content == "(The caller stopped keying in after: 12)"
    key(rig, "3")  # the entry is over
    assert last_user(rig).content == AGENT_DTMF_NOTE.format(digit="3")


def test_a_key_after_the_reprompt_keeps_the_entry_going(rig: Rig) -> None:
    ask_for_keys(rig, count=3)
    assert rig.fire("keys") == "reprompted"  # nothing keyed at all yet
    pending = rig.timers.last("keys")
    key(rig, "7")
    assert rig.handler.fire(pending, budget()) == "stale"  # the key came in time
    key(rig, "7")
    key(rig, "7")
    assert last_user(rig).content == "(The caller keyed in: 777)"


def test_speaking_instead_of_keying_in_ends_the_entry(rig: Rig) -> None:
    ask_for_keys(rig, count=8)
    key(rig, "5")
    rig.model.say("Sure, tell me your name instead.")
    rig.say("I don't have my account number.")
    assert last_user(rig).content == "I don't have my account number."
    assert rig.handler.fire(rig.timers.last("keys"), budget()) == "stale"
    key(rig, "6")  # no entry any more: an ordinary key press
    assert last_user(rig).content == AGENT_DTMF_NOTE.format(digit="6")


def test_keys_pressed_over_the_line_still_count(rig: Rig) -> None:
    ask_for_keys(rig, count=2)
    # The caller starts keying while the line plays: Twilio interrupts it, then sends the keys.
    rig.frame(
        json.dumps({"type": "interrupt", "utteranceUntilInterrupt": "Please key in", "durationUntilInterruptMs": 900})
    )
    key(rig, "4")
    key(rig, "2")
    assert last_user(rig).content == "(The caller keyed in: 42)"
    history = [m.content for m in rig.model.requests[-1].messages if m.role == "assistant"]
    assert "Please key in" in history and ASK not in history  # the line as the caller heard it


def test_the_keys_are_never_logged(rig: Rig, json_log: io.StringIO) -> None:
    ask_for_keys(rig, count=5)
    for digit in "97531":
        key(rig, digit)
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert any(line["message"] == "key entry complete" and line["keys"] == 5 for line in lines)
    text = json_log.getvalue()
    assert "97531" not in text and "digit" not in text


AGENT_DTMF_NOTE = "(The caller pressed the {digit} key on their phone.)"
