"""The socket drops: mid-reply, again, and past the reconnect cap. Each drop reaches the app as a
closed WebSocket (its next post is ``GoneException``) and reaches ``/action`` as ``failed`` /
64105; the call resumes on a new socket with its history intact, until the cap hands the caller
to a person."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from local.caller.phone import RelaySession, Reply, speech_seconds
from local.demo_model import ABOUT, HOURS
from local.stack import LocalStack
from tests.e2e.conftest import run, texts_by_role, turn_items
from tests.reliability.conftest import AUTH_TOKEN, ErrorFrames
from tests.support.local_calls import RoutingBrain, messages, place_call, say, say_until
from voice_agent.agent.config import AGENT
from voice_agent.table_schema import SORT_KEY

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MARK = "kestrel"


async def hear_the_greeting(session: RelaySession) -> None:
    """A reconnected caller first hears the reconnect greeting (about four seconds of speech; two
    here). Meanwhile the cut-off turn finds its socket gone at its next post and stores what it
    had spoken: the resumed conversation's history holds it."""
    await asyncio.sleep(min(speech_seconds(session.relay.welcome_greeting or ""), 2.0))


def test_drops_resume_with_history_intact_until_the_cap_transfers(
    stack: LocalStack, brain: RoutingBrain, dynamodb: DynamoDBClient, error_frames: ErrorFrames
) -> None:
    assert stack.urls.voice is not None
    replies: dict[str, Reply] = {}

    async def first(session: RelaySession) -> None:
        # A long answer; the line drops after a few words of it.
        replies["cut"] = await say_until(session, f"Hi, {MARK} here. Tell me about the store.", chars=40)
        await session.drop()

    async def second(session: RelaySession) -> None:
        await hear_the_greeting(session)
        replies["resumed"] = await say(session, f"{MARK} again. When are you open?")
        replies["cut again"] = await say_until(session, f"{MARK}: and tell me about the store once more.", chars=30)
        await session.drop()

    async def third(session: RelaySession) -> None:
        await hear_the_greeting(session)
        replies["after two drops"] = await say(session, f"{MARK} once more. When are you open?")
        # The line drops right after the caller spoke (a moment, so that the words left the phone
        # before the line died): the reply goes to a closed socket.
        await session.prompt(f"{MARK} one last time: tell me about the store.")
        await asyncio.sleep(0.05)
        await session.drop()

    call = run(place_call(stack.urls.voice, AUTH_TOKEN, first, second, third), timeout_s=90)
    result = call.result
    assert result.protocol_errors == [], call.explain()
    assert error_frames.new == 0

    # What the caller heard: a cut reply, then complete replies on each new socket.
    assert ABOUT.startswith(replies["cut"].text) and replies["cut"].text
    assert not replies["cut"].completed
    assert replies["resumed"].completed and replies["resumed"].text == HOURS
    assert replies["after two drops"].completed and replies["after two drops"].text == HOURS
    assert [s.end.status if s.end else None for s in result.sessions] == ["failed", "failed", "failed"]
    assert [s.relay.welcome_greeting for s in result.sessions] == [
        AGENT.lines.welcome_greeting,
        AGENT.lines.reconnect_greeting,
        AGENT.lines.reconnect_greeting,
    ]

    # Two reconnects (the cap), then the third drop hands the caller to a person.
    assert AGENT.max_reconnect_attempts == 2
    assert result.outcome == "transferred", call.explain()
    assert result.dial_target == AGENT.transfer_target
    assert [path for path, _ in result.webhook_statuses] == ["/voice", "/action", "/action", "/action", "/dial-status"]
    assert all(status == 200 for _, status in result.webhook_statuses)

    # The model's requests after each drop carry everything said before it: the cut-off answer
    # as far as it was spoken, and the caller's own words, in order.
    [resumed] = [r for r in brain.requests_with(MARK) if messages(r, "user")[-1] == f"{MARK} again. When are you open?"]
    users = messages(resumed, "user")
    assert users == [f"Hi, {MARK} here. Tell me about the store.", f"{MARK} again. When are you open?"]
    said = messages(resumed, "assistant")
    assert said[0] == AGENT.lines.welcome_greeting
    assert said[-1] == AGENT.lines.reconnect_greeting
    cut_stored = said[1]
    assert ABOUT.startswith(cut_stored) and len(cut_stored) >= len(replies["cut"].text.rstrip())
    assert cut_stored != ABOUT  # what was spoken before the drop, not the whole generated answer

    last_words = f"{MARK} one last time: tell me about the store."
    [last] = [r for r in brain.requests_with(MARK) if messages(r, "user")[-1] == last_words]
    assert messages(last, "user") == [
        f"Hi, {MARK} here. Tell me about the store.",
        f"{MARK} again. When are you open?",
        f"{MARK}: and tell me about the store once more.",
        f"{MARK} once more. When are you open?",
        last_words,
    ]

    # DynamoDB: one call, three connections, the reconnect count and the transfer.
    items = turn_items(dynamodb, stack.options.table_name, result.call_sid)
    assert {i[SORT_KEY]["S"].split("#")[1] for i in items} == {"0001", "0002", "0003"}
    assert len(texts_by_role(items, "user")) == 5
    call_item = dynamodb.get_item(
        TableName=stack.options.table_name, Key={"pk": {"S": f"CALL#{result.call_sid}"}, "sk": {"S": "CALL"}}
    )["Item"]
    assert call_item["reconnects"]["N"] == "3"
    assert call_item["status"]["S"] == "transferred"
