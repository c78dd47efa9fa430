"""Twenty calls at once: every invocation runs concurrently on the stand-in's pool, and no call sees
another's history (checked in the model's requests and in DynamoDB)."""

from __future__ import annotations

import asyncio
import re
import statistics
from typing import TYPE_CHECKING, Any

import pytest

from local.caller import scenario
from local.demo_model import DemoBrain
from local.stack import LocalStack
from tests.e2e.conftest import AUTH_TOKEN, explain, run, scripted, texts_by_role, turn_items
from voice_agent.adapters.bedrock_messages import CALL_START_NOTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.timeout(240)

CALLS = 20
ORDERS = {"1001": "cordless drill", "1002": "garden hose", "1003": "ladder"}
TAG = re.compile(r"caller number (\d+)", re.IGNORECASE)


def call_script(n: int) -> scenario.Scenario:
    order, item = list(ORDERS.items())[n % len(ORDERS)]
    return scripted(
        [
            {"say": f"Hi, this is caller number {n}. When are you open?", "expect": "Sunday"},
            {"say": f"This is caller number {n} again. Can you check order {order}?", "expect": item},
            {"say": f"Caller number {n} here: what was my order status again?", "expect": item},
            {"hangup": True},
        ],
        name=f"caller-{n}",
    )


def test_twenty_concurrent_calls_each_see_only_their_own_history(
    stack: LocalStack, brain: DemoBrain, dynamodb: DynamoDBClient
) -> None:
    assert stack.gateway is not None
    errors_before = stack.gateway.error_frames
    requests_before = len(brain.recorded())

    async def all_calls() -> list[scenario.ScenarioResult]:
        return await asyncio.gather(
            *(
                scenario.run(call_script(n), voice_url=stack.urls.voice, auth_token=AUTH_TOKEN, out=lambda _: None)
                for n in range(CALLS)
            )
        )

    results = run(all_calls(), timeout_s=180)
    failed = [explain(r) for r in results if not r.passed]
    assert not failed, "\n\n".join(failed[:3])
    assert stack.gateway.error_frames == errors_before

    # The model's requests: each one mentions exactly one caller, and each call's last request
    # carries its own two earlier turns and the tool result of its own order.
    requests = brain.recorded()[requests_before:]
    assert len(requests) >= CALLS * 4  # 3 prompts, one of them with a tool round
    last_request: dict[int, list[dict[str, Any]]] = {}
    for request in requests:
        users = [m["content"] for m in request["messages"] if m["role"] == "user"]
        tags = {int(t) for u in users for t in TAG.findall(u)}
        assert len(tags) == 1, f"a request mixes callers {sorted(tags)}"
        last_request[tags.pop()] = request["messages"]
    assert sorted(last_request) == list(range(CALLS))
    for n, messages in last_request.items():
        item = list(ORDERS.values())[n % len(ORDERS)]
        users = [m["content"] for m in messages if m["role"] == "user" and m["content"] != CALL_START_NOTE]
        assert len(users) == 3, users
        tools = [m["content"] for m in messages if m["role"] == "tool"]
        assert len(tools) == 1
        assert item in tools[0]
        assert all(other not in tools[0] for other in ORDERS.values() if other != item)

    # DynamoDB: each call's turns hold only that call's words.
    for n, result in enumerate(results):
        users = texts_by_role(turn_items(dynamodb, stack.options.table_name, result.call.call_sid), "user")
        assert len(users) == 3
        assert all({int(t) for t in TAG.findall(u)} == {n} for u in users), users

    # Generous bound only: the machine is shared and timing is noisy.
    firsts = [r.first_text_ms for res in results for r in res.call.replies() if r.first_text_ms is not None]
    assert len(firsts) == CALLS * 3
    assert statistics.median(firsts) < 10_000
