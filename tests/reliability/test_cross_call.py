"""A CallSid that belongs to another call: two live calls, and requests naming one call's SID from
outside it. What this system decides (see also the README's security notes):

- A webhook form's CallSid is covered by Twilio's signature. A form for one call re-pointed at
  another call's SID, or signed by another account, is refused (403) and changes nothing.
- Twilio's signature carries no timestamp, so a genuine callback can be replayed verbatim. A
  replayed ``/action`` gets the same answer and counts nothing again (one count per SessionId).
- A socket belongs to the call of its first ``setup``. A second setup on it naming another call's
  SID is ignored: neither conversation is cross-wired.
- A *new*, correctly signed socket whose setup names a live call's SID is how Twilio resumes a
  call (same CallSid, new SessionId), so it is accepted: the upgrade signature is what proves the
  socket is Twilio's. That signature covers only the fixed URL, so it is the same for every call:
  it must be kept as secret as the auth token (see the report in the README's security notes).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx

from local.caller.phone import CallerIdentity, RelaySession, Reply
from local.stack import LocalStack
from tests.e2e.conftest import run, texts_by_role, turn_items
from tests.reliability.conftest import AUTH_TOKEN, ErrorFrames
from tests.support.local_calls import RoutingBrain, messages, place_call, say
from voice_agent.adapters.dynamo_store import call_key
from voice_agent.signatures import sign

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def connection_items(db: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    pages = db.get_paginator("scan").paginate(
        TableName=table, FilterExpression="sk = :conn", ExpressionAttributeValues={":conn": {"S": "CONN"}}
    )
    return [item for page in pages for item in page["Items"]]


def call_item(db: DynamoDBClient, table: str, sid: str) -> dict[str, Any]:
    return db.get_item(TableName=table, Key=call_key(sid), ConsistentRead=True)["Item"]


def test_requests_naming_another_calls_sid_neither_touch_nor_cross_wire_it(
    stack: LocalStack, brain: RoutingBrain, dynamodb: DynamoDBClient, error_frames: ErrorFrames
) -> None:
    assert stack.urls.voice is not None and stack.urls.webhook is not None
    voice, action = stack.urls.voice, f"{stack.urls.webhook}/action"
    table = stack.options.table_name
    alpha, bravo = CallerIdentity(from_number="+15550100001"), CallerIdentity(from_number="+15550100002")
    ready = {"alpha": asyncio.Event(), "bravo": asyncio.Event()}
    attacked = asyncio.Event()
    sessions: dict[str, RelaySession] = {}
    replies: dict[str, Reply] = {}
    findings: dict[str, Any] = {}

    async def alpha_talks(session: RelaySession) -> None:
        sessions["alpha"] = session
        await say(session, "This is alpha. Can you check order 1001?")
        ready["alpha"].set()
        await attacked.wait()
        replies["alpha"] = await say(session, "Alpha again: what was my order status again?")

    async def bravo_first(session: RelaySession) -> None:
        sessions["bravo 1"] = session
        await say(session, "This is bravo. Can you check order 1002?")
        await session.drop()  # a genuine drop: Twilio posts /action failed for this session

    async def bravo_resumed(session: RelaySession) -> None:
        sessions["bravo 2"] = session
        await say(session, "Bravo here, back again. Hello?")  # the resumed socket is bound
        ready["bravo"].set()
        await attacked.wait()
        replies["bravo"] = await say(session, "Bravo again: what was my order status again?")

    async def attacker() -> None:
        await ready["alpha"].wait()
        await ready["bravo"].wait()
        a_sid, b_sid = alpha.call_sid, bravo.call_sid
        before = call_item(dynamodb, table, b_sid)
        b_turns = turn_items(dynamodb, table, b_sid)
        async with httpx.AsyncClient(timeout=10) as http:
            # 1. Alpha's genuine callback, re-pointed at bravo's SID; and one signed by another account.
            a_form = {"CallSid": a_sid, "CallStatus": "in-progress", "SessionId": "VXalpha", "SessionStatus": "failed"}
            forged = {**a_form, "CallSid": b_sid}
            findings["re-pointed"] = (
                await http.post(action, data=forged, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, action, a_form)})
            ).status_code
            findings["other account"] = (
                await http.post(
                    action, data=forged, headers={"X-Twilio-Signature": sign("other-token", action, forged)}
                )
            ).status_code
            # 2. Bravo's genuine /action for its dropped session, replayed verbatim.
            b_form = {
                "CallSid": b_sid,
                "CallStatus": "in-progress",
                "SessionId": sessions["bravo 1"].session_id,
                "SessionStatus": "failed",
                "ErrorCode": "64105",
            }
            signature = {"X-Twilio-Signature": sign(AUTH_TOKEN, action, b_form)}
            findings["replays"] = [(await http.post(action, data=b_form, headers=signature)).text for _ in range(3)]
        # 3. Alpha's socket sends a second setup naming bravo's call.
        await sessions["alpha"].send_raw(
            json.dumps({"type": "setup", "sessionId": "VXhijack", "callSid": b_sid, "customParameters": {}})
        )
        await asyncio.sleep(0.5)
        after = call_item(dynamodb, table, b_sid)
        findings["bravo call item"] = (before, after)
        findings["bravo turns"] = (b_turns, turn_items(dynamodb, table, b_sid))
        attacked.set()

    async def scene() -> tuple[Any, Any]:
        calls = asyncio.gather(
            place_call(voice, AUTH_TOKEN, alpha_talks, identity=alpha),
            place_call(voice, AUTH_TOKEN, bravo_first, bravo_resumed, identity=bravo),
        )
        _, (a_call, b_call) = await asyncio.gather(attacker(), calls)
        return a_call, b_call

    a_call, b_call = run(scene(), timeout_s=90)
    assert a_call.result.protocol_errors == [] and b_call.result.protocol_errors == []
    assert error_frames.new == 0

    # 1. Refused, and bravo's call untouched by them or by anything else below.
    assert findings["re-pointed"] == 403
    assert findings["other account"] == 403
    # 2. The replays got the answer the genuine callback got, and counted nothing more.
    first, *again = findings["replays"]
    assert "<Connect" in first and all(r == first for r in again)
    before, after = findings["bravo call item"]
    assert before["reconnects"] == after["reconnects"] == {"N": "1"}
    assert before["status"] == after["status"]
    # 3. The second setup wrote nothing into bravo's conversation, and alpha's socket is alpha's.
    turns_before, turns_after = findings["bravo turns"]
    assert turns_after == turns_before
    connections = connection_items(dynamodb, table)
    # (a socket $connect noted but no setup bound has no sessionId)
    assert [c.get("sessionId", {}).get("S") for c in connections if c["callSid"]["S"] == alpha.call_sid] == [
        sessions["alpha"].session_id
    ]
    assert not any(c.get("sessionId", {}).get("S") == "VXhijack" for c in connections)

    # Each call kept its own conversation: the answers come from each caller's own order...
    assert "cordless drill" in replies["alpha"].text and "garden hose" not in replies["alpha"].text
    assert "garden hose" in replies["bravo"].text and "cordless drill" not in replies["bravo"].text
    # ...and so do the histories in DynamoDB and every request the model saw.
    assert all("alpha" in t.lower() for t in texts_by_role(turn_items(dynamodb, table, alpha.call_sid), "user"))
    assert all("bravo" in t.lower() for t in texts_by_role(turn_items(dynamodb, table, bravo.call_sid), "user"))
    for request in brain.requests_with("This is alpha") + brain.requests_with("This is bravo"):
        said = " ".join(messages(request, "user")).lower()
        assert not ("alpha" in said and "bravo" in said), said
