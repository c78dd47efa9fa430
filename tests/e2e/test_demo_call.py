"""The demo call (what `make demo` places), through the real webhook, socket, handlers and DynamoDB."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from local.caller import scenario
from local.demo_model import DemoBrain
from local.dynamodb import find_jar, find_java
from local.stack import LocalStack
from tests.e2e.conftest import AUTH_TOKEN, explain, run, texts_by_role, turn_items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def messages_for(brain: DemoBrain, user_text: str) -> list[dict[str, Any]]:
    """The messages of the model request that answered ``user_text``."""
    for request in brain.recorded():
        messages: list[dict[str, Any]] = request["messages"]
        if messages[-1].get("role") == "user" and messages[-1].get("content") == user_text:
            return messages
    raise AssertionError(f"no model request answered {user_text!r}")


def test_the_real_dynamodb_engine_runs_where_java_does(stack: LocalStack) -> None:
    assert stack.engine is not None
    if find_java() is not None and find_jar() is not None:
        assert stack.engine.kind == "dynamodb-local", "Java and the jar are here: DynamoDB Local should run"
    else:
        assert stack.engine.kind == "moto"


def test_the_demo_call(stack: LocalStack, brain: DemoBrain, dynamodb: DynamoDBClient, provider: str) -> None:
    """Greeting, turns, a barge-in, a key press, a tool, a dropped line and a reconnect, a transfer:
    on each provider, through its real client and a stand-in that speaks its wire protocol."""
    demo = scenario.load(scenario.find("demo"))
    errors_before = stack.gateway.error_frames if stack.gateway else 0
    assert stack.bedrock is not None
    bedrock_before, refused_before = len(stack.bedrock.requests), len(stack.bedrock.refused)
    lines: list[str] = []
    result = run(scenario.run(demo, voice_url=stack.urls.voice, auth_token=AUTH_TOKEN, out=lines.append))
    assert result.passed, explain(result)
    call = result.call

    # Greeting, turns, barge-in, key, drop + reconnect through /action, transfer through <Dial>.
    assert call.outcome == "transferred"
    assert call.dial_target == "+15555550100"
    assert [(path, status) for path, status in call.webhook_statuses] == [
        ("/voice", 200),
        ("/action", 200),  # failed 64105 -> a new <Connect>
        ("/action", 200),  # ended with handoffData -> <Dial>
        ("/dial-status", 200),
    ]
    first, second = call.sessions
    assert first.end is not None and first.end.status == "failed" and first.end.error_code == "64105"
    assert second.end is not None and second.end.status == "ended"
    assert json.loads(second.end.handoff_data or "{}")["reasonCode"] == "live-agent-handoff"
    assert call.protocol_errors == []
    assert stack.gateway is not None and stack.gateway.error_frames == errors_before

    # The barge-in: the reply stopped (no `last`), and the next model request holds what was heard.
    barged = next(r for r in call.replies() if r.interrupted)
    assert barged.heard and not barged.completed
    after = messages_for(brain, "Sorry to cut in. Can you check my order? It's 1001.")
    assistant = [m["content"] for m in after if m["role"] == "assistant"]
    assert barged.heard.strip() in [a.strip() for a in assistant if a]
    assert all("free delivery" not in (a or "") and "fifty dollars" not in (a or "") for a in assistant)

    # The reconnect resumed the same conversation: the order lookup from session 1 is in the request.
    resumed = messages_for(brain, "Sorry, we got cut off. What was the status of my order again?")
    assert any(m["role"] == "tool" and "cordless drill" in m["content"] for m in resumed)
    greeting = "Sorry about that, we were cut off. Where were we?"
    assert any(m["role"] == "assistant" and greeting in (m["content"] or "") for m in resumed)

    # Every turn went through the chosen provider, and Bedrock refused nothing it was sent.
    bedrock_requests = list(stack.bedrock.requests)[bedrock_before:]
    if provider == "bedrock":
        assert len(bedrock_requests) >= 6  # every turn, the tool round included
        assert {model for model, _ in bedrock_requests} == {"us.amazon.nova-lite-v1:0"}
        assert stack.bedrock.refused[refused_before:] == []
        # The stand-in thinks aloud before the order lookup, as Nova does: never spoken.
        assert all("thinking" not in r.text and "<" not in r.text for r in call.replies())
    else:
        assert bedrock_requests == []

    # DynamoDB holds the call's turns under its callSid, across both sessions.
    items = turn_items(dynamodb, stack.options.table_name, result.call.call_sid)
    users = texts_by_role(items, "user")
    assert "Hi! When are you open on Sunday?" in users
    assert "(The caller pressed the 1 key on their phone.)" in users
    assert "Thanks. Could I talk to a real person, please?" in users
    assert {i["sk"]["S"].split("#")[1] for i in items} == {"0001", "0002"}  # two connections, one call
