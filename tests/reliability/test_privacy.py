"""Privacy across a run of the local stack at the default settings (``LOG_SENSITIVE_DATA`` unset):
the runtime's JSON logs (what CloudWatch would hold), its metric lines and every other log line of
the process hold no transcript text (the caller's or the agent's), no full phone number and no
secret; and every item the project wrote to DynamoDB carries a TTL in the near future.

The run exercises every path that logs or writes: speech, an order lookup, a barge-in, key
presses, Twilio error and info frames, partial prompts, tool calls refused and accepted (with
caller words in their arguments), a language switch, a dropped socket and its reconnect, a
transfer, a goodbye, a hang-up, and refused webhooks and upgrades.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from local.caller.phone import CallerIdentity, RelaySession, Reply
from local.demo_model import ABOUT, HOURS
from local.openai_server import Reply as ModelReply
from local.openai_server import ToolCallReply, split_tokens
from local.stack import LocalStack
from tests.e2e.conftest import run
from tests.reliability.conftest import AUTH_TOKEN, OPENAI_KEY, ErrorFrames
from tests.support.local_calls import RoutingBrain, captured_logs, place_call, say, say_until
from voice_agent.agent.config import AGENT
from voice_agent.log import logger
from voice_agent.signatures import sign
from voice_agent.table_schema import TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REPORT_DIR = Path(".local/reliability")
CALLER, CALLED = "+14155550123", "+14155550199"
SECRETS = {
    "card": "My card number is 4111 1111 1111 1111 and my password is correct horse battery staple.",
    "twilio error": "the caller said their PIN is 8642",
    "tokens played": "Your account balance is nine hundred dollars",
    "partial": "my mother's maiden name is Featherstonehaugh",
    "tool argument": "my social security number is 078-05-1120",
    "barge-in": "Tell me about the store please.",
}


def forbidden(stack: LocalStack, spoken: list[str]) -> dict[str, str]:
    """What no log line may contain, by name."""
    items: dict[str, str] = {
        "caller number": CALLER,
        "called number": CALLED,
        "caller number, digits": CALLER.lstrip("+"),
        "called number, digits": CALLED.lstrip("+"),
        "Twilio auth token": AUTH_TOKEN,
        "OpenAI key": OPENAI_KEY,
        "upgrade signature (the same for every call)": sign(AUTH_TOKEN, stack.urls.relay),
        "agent: hours": HOURS,
        "agent: about": ABOUT[:60],
    }
    items.update({f"caller: {name}": text for name, text in SECRETS.items()})
    items.update({"card number": "4111 1111 1111 1111", "password": "correct horse battery", "ssn": "078-05-1120"})
    for n, text in enumerate(spoken):
        if len(text) >= 24:
            items[f"agent reply {n}"] = text[:48]
    return items


@pytest.fixture(params=["INFO", "DEBUG"])
def log_level(request: pytest.FixtureRequest) -> Iterator[str]:
    """INFO is the default; DEBUG shows that even the most detailed lines keep the rule."""
    level = logger.log_level
    logger.setLevel(request.param)
    yield str(request.param)
    logger.setLevel(level)


def test_logs_hold_no_transcripts_numbers_or_secrets_and_every_item_expires(  # noqa: PLR0917 (fixtures)
    log_level: str,
    stack: LocalStack,
    brain: RoutingBrain,
    dynamodb: DynamoDBClient,
    error_frames: ErrorFrames,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert stack.urls.voice is not None and stack.urls.webhook is not None
    voice = stack.urls.voice
    replies: list[Reply] = []
    brain.script(
        "privacymarker",
        ModelReply(
            tool_calls=[
                ToolCallReply("switch_language", {"language": SECRETS["tool argument"]}),
                ToolCallReply("lookup_order", {"order_id": SECRETS["tool argument"]}),
            ]
        ),
        ModelReply(tool_calls=[ToolCallReply("switch_language", {"language": "es-ES"})]),
        ModelReply(tokens=split_tokens("Claro. Seguimos en español.")),
    )

    async def first(session: RelaySession) -> None:
        replies.append(await say(session, SECRETS["card"]))
        replies.append(await say_until(session, SECRETS["barge-in"], chars=20))
        await session.interrupt()
        key = await session.dtmf("1")
        assert key is not None
        await session.wait(key, 20)
        replies.append(key)
        await session.send_raw(
            json.dumps({"type": "error", "description": f"Invalid message: {SECRETS['twilio error']}"})
        )
        await session.send_raw(json.dumps({"type": "info", "name": "tokensPlayed", "value": SECRETS["tokens played"]}))
        await session.send_raw(json.dumps({"type": "prompt", "voicePrompt": SECRETS["partial"], "last": False}))
        replies.append(await say(session, "Please switch languages (privacymarker)."))
        await session.drop()

    async def second(session: RelaySession) -> None:
        replies.append(await say(session, "What was my order status again?"))
        key = await session.dtmf("0")  # a person, please: a transfer through /action
        assert key is not None
        await session.wait_ended(20)

    async def goodbye(session: RelaySession) -> None:
        replies.append(await say(session, "When are you open?"))
        replies.append(await say(session, "Thanks, goodbye!"))
        await session.wait_ended(20)

    async def hang_up(session: RelaySession) -> None:
        return None

    async def refused() -> list[int]:
        statuses = []
        async with httpx.AsyncClient(timeout=10) as http:
            form = {"CallSid": "CA" + "9" * 32, "From": CALLER, "To": CALLED}
            forged = sign("not-the-token", f"{stack.urls.webhook}/voice", form)
            statuses.append((await http.post(voice, data=form, headers={"X-Twilio-Signature": forged})).status_code)
        try:
            async with connect(stack.urls.relay, additional_headers={"X-Twilio-Signature": "forged"}):
                statuses.append(101)
        except InvalidStatus as exc:
            statuses.append(exc.response.status_code)
        return statuses

    with captured_logs() as logs:
        one = run(
            place_call(voice, AUTH_TOKEN, first, second, identity=CallerIdentity(from_number=CALLER, to_number=CALLED)),
            timeout_s=90,
        )
        two = run(place_call(voice, AUTH_TOKEN, goodbye, identity=CallerIdentity(from_number=CALLER, to_number=CALLED)))
        three = run(
            place_call(voice, AUTH_TOKEN, hang_up, identity=CallerIdentity(from_number=CALLER, to_number=CALLED))
        )
        assert run(refused()) == [403, 403]
        time.sleep(0.5)  # the last disconnects and callbacks
        runtime = logs.text
    printed = capsys.readouterr()
    everything = "\n".join([runtime, caplog.text, printed.out, printed.err])

    # The run did what it was meant to (or the check below would prove little).
    assert one.result.outcome == "transferred", one.explain()
    assert one.result.reconnects == 1
    assert two.result.outcome == "ended", two.explain()
    assert three.result.outcome == "hung_up"
    assert all(c.result.protocol_errors == [] for c in (one, two, three))
    assert error_frames.new == 0
    records = [json.loads(line) for line in runtime.splitlines()]
    assert len(records) > 40
    said = [r.text for r in replies]
    assert any("es-ES" in f.data.get("ttsLanguage", "") for r in replies for f in r.frames if f.type == "language")

    leaks = {name: value for name, value in forbidden(stack, said).items() if value in everything}
    assert leaks == {}, leaks
    # Lines about the call carry its id and masked numbers instead.
    bound = [r for r in records if r["message"] == "session bound"]
    assert bound and all(r["from"] == "+*******0123" and r["to"] == "+*******0199" for r in bound)
    # (A prompt that overtakes its setup is logged before the call is known; its turn is not.)
    assert all("call_sid" in r for r in records if r["message"] in ("turn finished", "interrupt", "session bound"))

    # TTL: every item in the table (this run's and every earlier test's) expires, soon.
    now = int(time.time())
    retention = AGENT.transcript_retention_days * 86400
    items = scan(dynamodb, stack.options.table_name)
    kinds: Counter[str] = Counter()
    missing: list[dict[str, Any]] = []
    for item in items:
        kinds[kind(item)] += 1
        ttl = item.get(TTL_ATTRIBUTE, {}).get("N")
        if ttl is None or not now < int(ttl) <= now + retention + 60:
            missing.append({"pk": item["pk"]["S"][:12], "sk": item["sk"]["S"], "ttl": ttl})
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"privacy-{log_level.lower()}.json").write_text(
        json.dumps(
            {
                "log_level": log_level,
                "log_lines_checked": len(everything.splitlines()),
                "forbidden_strings": len(forbidden(stack, said)),
                "leaks": len(leaks),
                "items_scanned": len(items),
                "items_by_kind": dict(kinds),
                "items_without_a_valid_ttl": len(missing),
            },
            indent=2,
        )
    )
    assert missing == [], missing[:10]
    for needed in ("call", "connection", "turn: user", "turn: assistant", "turn: tool", "turn: interruption"):
        assert kinds[needed] > 0, needed


def scan(db: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    return [item for page in db.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]


def kind(item: dict[str, Any]) -> str:
    sk = item["sk"]["S"]
    if sk == "CALL":
        return "call"
    if sk == "CONN":
        return "connection"
    return "turn: " + str(item.get("role", {}).get("S", "?"))
