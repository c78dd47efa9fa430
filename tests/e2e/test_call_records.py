"""The record every call leaves, silence handled on a timer, and key entry, on the local stack: the
real webhook, handlers and DynamoDB, the SQS stand-in and its event source mappings, the simulated
caller. The contract checked outside the repository: each finished call's record is
``LOCAL_CALL_RECORDS_DIR/<CallSid>.json``, with ``callSid``, ``outcome`` and a ``transcript`` of
``speaker``/``text`` items, a few seconds after the ``/action`` callback that ends the call."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from local.caller import scenario
from local.caller.phone import Call, CallerIdentity, RelaySession
from local.caller.transcript import PrintedTranscript
from local.demo_model import ABOUT, ACCOUNT_PROMPT, DemoBrain
from local.stack import LocalStack
from local.timers import RECORDS
from tests.e2e.conftest import AUTH_TOKEN, explain, run, scripted
from voice_agent import wiring
from voice_agent.agent.config import AGENT, TimedLines, TimingPolicy

RECORD_WITHIN_S = 8.0  # the records queue's delay (3 s) and the records function's work


def wait_for_record(
    stack: LocalStack, call_sid: str, timeout_s: float = RECORD_WITHIN_S
) -> tuple[dict[str, Any], float]:
    """The call's record and how long after now it appeared."""
    assert stack.urls.records_dir is not None
    path = Path(stack.urls.records_dir) / f"{call_sid}.json"
    start = time.monotonic()
    while not path.is_file() and time.monotonic() - start < timeout_s:
        time.sleep(0.1)
    assert path.is_file(), f"no record at {path} within {timeout_s} s"
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record, time.monotonic() - start


def events_for(stack: LocalStack, call_sid: str) -> list[dict[str, Any]]:
    assert stack.urls.records_dir is not None
    lines = (Path(stack.urls.records_dir) / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["detail"]["callSid"] == call_sid]


def test_a_hung_up_call_leaves_its_record_seconds_after_the_end_callback(stack: LocalStack) -> None:
    call = scripted([{"say": "Hi! When are you open on Sunday?", "expect": ["Sunday"]}, {"hangup": True}])
    result = run(scenario.run(call, voice_url=stack.urls.voice, auth_token=AUTH_TOKEN))
    assert result.passed, explain(result)
    assert ("/action", 200) in result.call.webhook_statuses
    record, waited = wait_for_record(stack, result.call.call_sid)
    assert waited < RECORD_WITHIN_S
    assert record["callSid"] == result.call.call_sid and record["outcome"] == "completed"
    assert [(line["speaker"], line["text"][:20]) for line in record["transcript"]] == [
        ("agent", AGENT.lines.welcome_greeting[:20]),
        ("caller", "Hi! When are you ope"),
        ("agent", "We're open Monday to"),
    ]
    assert all(set(line) == {"speaker", "text", "at"} for line in record["transcript"])
    assert record["turns"][0]["timeToFirstPhraseMs"] > 0
    (event,) = events_for(stack, result.call.call_sid)
    assert event["detail-type"] == "Call Record Created" and event["detail"]["outcome"] == "completed"


def test_the_demo_calls_record_is_transferred_and_holds_what_the_caller_heard(stack: LocalStack) -> None:
    demo = scenario.load(scenario.find("demo"))
    result = run(scenario.run(demo, voice_url=stack.urls.voice, auth_token=AUTH_TOKEN))
    assert result.passed, explain(result)
    record, _ = wait_for_record(stack, result.call.call_sid)
    assert record["outcome"] == "transferred"
    assert record["transfer"]["dialResult"] == "completed" and record["reconnects"] == 1
    interrupted = [r for r in result.call.replies() if r.interrupted]
    assert len(interrupted) == 1 and interrupted[0].heard
    heard = interrupted[0].heard.strip()
    agent_lines = [line["text"] for line in record["transcript"] if line["speaker"] == "agent"]
    assert heard in agent_lines  # what the caller heard of the long answer
    assert ABOUT not in json.dumps(record)  # never what was generated
    assert sum(t["interrupted"] for t in record["turns"]) == 1


@pytest.fixture
def quick_timers() -> Iterator[None]:
    """The agent with short timers (the handlers run in this process: the composition root hands
    them the overriding agent)."""
    lines = TimedLines(reminders=("Are you still there?",), silence_goodbye="Goodbye for now!")
    agent = dataclasses.replace(
        AGENT, timing=TimingPolicy(silence_after_s=3, key_timeout_s=3, key_reprompts=1, lines={"en-US": lines})
    )
    # The default agent, whatever the agents folder says; in the folder too, since every timer
    # follows the agent that answers its call (the folder's default, by its name).
    folder = wiring.agents()
    agents = dataclasses.replace(folder, by_name=MappingProxyType({**folder.by_name, folder.default_name: agent}))
    with wiring.overrides(agent=agent, agents=agents):
        yield


class Silent:
    """A caller who says one thing, then nothing at all until the agent ends the session."""

    def __init__(self) -> None:
        self.silent_from = 0.0

    async def on_session(self, session: RelaySession) -> None:
        reply = await session.prompt("Hi there.")
        await session.wait(reply, 20)
        self.silent_from = time.monotonic()
        await session.wait_ended(40)


def test_a_silent_caller_hears_a_reminder_then_goodbye_and_the_call_ends(stack: LocalStack, quick_timers: None) -> None:
    driver = Silent()
    call = Call(transcript=PrintedTranscript(out=lambda _: None), auth_token=AUTH_TOKEN, identity=CallerIdentity())
    result = run(call.dial(stack.urls.voice or "", driver), timeout_s=90)
    (session,) = result.sessions
    assert session.end is not None and session.end.status == "ended" and session.end.handoff_data is None
    unsolicited = [r for r in session.replies if r.kind == "unsolicited"]
    assert [r.text for r in unsolicited] == ["Are you still there?", "Goodbye for now!"]
    reminder = unsolicited[0]
    assert reminder.first_text_at is not None and reminder.first_text_at - driver.silent_from >= 3.0  # real silence
    record, _ = wait_for_record(stack, result.call_sid)
    assert record["outcome"] == "no_response"
    assert [line["text"] for line in record["transcript"][-2:]] == ["Are you still there?", "Goodbye for now!"]


class KeysIn:
    """Asks about the account, keys in six digits one by one, then hangs up after the answer."""

    def __init__(self) -> None:
        self.answer = ""

    async def on_session(self, session: RelaySession) -> None:
        ask = await session.prompt("I'd like to check my account.")
        await session.wait(ask, 20)
        answer = None
        for digit in "482916":
            await asyncio.sleep(0.15)
            answer = await session.dtmf(digit)
        assert answer is not None
        await session.wait(answer, 20)
        self.answer = answer.text
        await session.hangup()


def test_keys_keyed_in_are_one_model_turn(stack: LocalStack, brain: DemoBrain) -> None:
    before = len(brain.recorded())
    driver = KeysIn()
    call = Call(transcript=PrintedTranscript(out=lambda _: None), auth_token=AUTH_TOKEN, identity=CallerIdentity())
    result = run(call.dial(stack.urls.voice or "", driver), timeout_s=60)
    (session,) = result.sessions
    asked = [r for r in session.replies if r.kind == "prompt"]
    assert ACCOUNT_PROMPT in asked[0].text
    assert "ending in one six" in driver.answer
    requests = brain.recorded()[before:]
    keyed = [r for r in requests if "(The caller keyed in: 482916)" in json.dumps(r["messages"][-1])]
    assert len(keyed) == 1  # six keys, one model turn
    assert not any("pressed the" in json.dumps(r["messages"][-1]) for r in requests)
    record, _ = wait_for_record(stack, result.call_sid)
    assert "(keyed in 6 keys)" in [line["text"] for line in record["transcript"]]
    assert "482916" not in json.dumps(record)


def test_the_records_queue_has_no_dead_letters(stack: LocalStack) -> None:
    """Every record the tier's calls asked for was made (a failure would wait here)."""
    assert stack.queues is not None
    assert stack.queues.dead_letters(RECORDS) == []
    assert not [d for d in stack.queues.queues[RECORDS].deliveries if d.failed]
