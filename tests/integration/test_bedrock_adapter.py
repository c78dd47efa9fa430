"""The Bedrock adapter through the unmodified boto3 client against the local stand-in, which speaks
ConverseStream's wire protocol (the AWS event stream over HTTP) and refuses what the service refuses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.bedrock_server import BedrockStandIn
from local.openai_server import Reply, ScriptedBrain, ToolCallReply, split_tokens
from tests.support.local_calls import captured_logs
from voice_agent import env_names as names
from voice_agent.adapters import aws_clients
from voice_agent.adapters.bedrock_chat import BedrockChatModel
from voice_agent.core.model import (
    ChatMessage,
    ChatRequest,
    StreamFinished,
    TextDelta,
    TokenUsage,
    ToolCall,
    ToolSpec,
)
from voice_agent.errors import (
    LLMAccessDeniedError,
    LLMError,
    LLMRejectedError,
    LLMStreamBrokenError,
    LLMThrottledError,
    LLMUnavailableError,
)

MODEL = "us.amazon.nova-lite-v1:0"
LOOKUP = ToolSpec(
    "lookup_order", "Look up an order.", {"type": "object", "properties": {"order_id": {"type": "string"}}}
)
REQUEST = ChatRequest(
    messages=(
        ChatMessage("system", "You are Ada."),
        ChatMessage("assistant", "Hi, this is Ada."),
        ChatMessage("user", "Where is my order 1001?"),
    ),
    tools=(LOOKUP,),
    max_tokens=120,
    temperature=0.5,
)


@pytest.fixture
def brain() -> ScriptedBrain:
    return ScriptedBrain()


@pytest.fixture
def bedrock(brain: ScriptedBrain, monkeypatch: pytest.MonkeyPatch) -> Iterator[BedrockStandIn]:
    with BedrockStandIn(brain) as server:
        monkeypatch.setenv(names.BEDROCK_ENDPOINT_URL, server.endpoint_url)
        aws_clients.reset_clients()
        yield server
    aws_clients.reset_clients()


def model(read_timeout_s: float = 2.0, **kw: Any) -> BedrockChatModel:
    return BedrockChatModel(model=MODEL, connect_timeout_s=1.0, read_timeout_s=read_timeout_s, max_attempts=1, **kw)


def spoken(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_streams_text_and_sends_the_request_in_bedrocks_shape(bedrock: BedrockStandIn, brain: ScriptedBrain) -> None:
    brain.push("We open at nine.")
    usages: list[tuple[str, TokenUsage]] = []
    events = list(model(on_usage=lambda m, u: usages.append((m, u))).stream(REQUEST))
    assert [e.text for e in events if isinstance(e, TextDelta)] == split_tokens("We open at nine.")
    final = events[-1]
    assert isinstance(final, StreamFinished) and final.finish_reason == "stop" and final.usage is not None
    assert usages == [(MODEL, final.usage)] and final.usage.output_tokens == 4
    assert bedrock.refused == []
    [(model_id, body)] = list(bedrock.requests)
    assert model_id == MODEL  # the inference profile id, through the URL path
    assert body["system"] == [{"text": "You are Ada."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["inferenceConfig"] == {"maxTokens": 120, "temperature": 0.5}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "lookup_order"
    [signer] = list(bedrock.signers)
    assert signer == {"scheme": "sigv4", "access_key_id": "testing", "region": "us-east-1"}


def test_text_arrives_as_it_is_generated(bedrock: BedrockStandIn, brain: ScriptedBrain) -> None:
    brain.push(Reply(tokens=split_tokens("one two three four five six seven eight nine ten"), token_interval_s=0.1))
    started = time.monotonic()
    stream = iter(model().stream(REQUEST))
    first = next(stream)
    first_at = time.monotonic() - started
    rest = list(stream)
    total = time.monotonic() - started
    assert first == TextDelta("one")
    assert first_at < 0.5  # the first word came long before the last
    assert total > 0.8
    assert isinstance(rest[-1], StreamFinished)


def test_tool_calls_are_assembled_and_their_results_go_back(bedrock: BedrockStandIn, brain: ScriptedBrain) -> None:
    brain.push(
        Reply(tokens=split_tokens("Let me look."), tool_calls=[ToolCallReply("lookup_order", {"order_id": "1001"})]),
        "It shipped.",
    )
    final = list(model().stream(REQUEST))[-1]
    assert isinstance(final, StreamFinished) and final.finish_reason == "tool_calls"
    [call] = final.tool_calls
    assert call.name == "lookup_order" and json.loads(call.arguments) == {"order_id": "1001"}
    assert call.id.startswith("tooluse_")
    follow_up = ChatRequest(
        messages=(
            *REQUEST.messages,
            ChatMessage("assistant", "Let me look.", tool_calls=(call,)),
            ChatMessage("tool", '{"found": "yes", "status": "shipped"}', tool_call_id=call.id),
        ),
        tools=(LOOKUP,),
    )
    assert spoken(list(model().stream(follow_up))) == "It shipped."
    assert bedrock.refused == []
    result = bedrock.requests[-1][1]["messages"][-1]["content"][0]["toolResult"]
    assert result["toolUseId"] == call.id
    # The scripted model saw it as any model would: a tool message answering the call.
    assert brain.requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": '{"found": "yes", "status": "shipped"}',
    }


def test_nova_style_thinking_aloud_before_a_tool_call_is_never_spoken(
    brain: ScriptedBrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    with BedrockStandIn(brain, think_aloud=True) as server:
        monkeypatch.setenv(names.BEDROCK_ENDPOINT_URL, server.endpoint_url)
        aws_clients.reset_clients()
        brain.push(Reply(tokens=split_tokens("Let me look."), tool_calls=[ToolCallReply("lookup_order", {})]))
        events = list(model().stream(REQUEST))
    aws_clients.reset_clients()
    assert spoken(events) == "Let me look."


def test_closing_a_stream_cancels_the_request_at_once_even_from_another_thread(
    bedrock: BedrockStandIn, brain: ScriptedBrain
) -> None:
    """The turn engine reads on a helper thread and closes from its own: the blocked read must end
    and the service must see the connection go now, not after the read timeout."""
    brain.push(Reply(tokens=split_tokens("word " * 100), token_interval_s=2.0))
    stream = model(read_timeout_s=20.0).stream(REQUEST)
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.extend(stream), daemon=True)
    reader.start()
    deadline = time.monotonic() + 3
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [TextDelta("word")]
    time.sleep(0.2)  # the reader now waits in a socket read for the next word (2 s away)
    closed_at = time.monotonic()
    stream.close()
    reader.join(2.0)
    assert not reader.is_alive()
    assert time.monotonic() - closed_at < 1.0
    deadline = time.monotonic() + 5
    while bedrock.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert bedrock.cancelled == 1  # the server's next write failed: generation stopped


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(fault="status", status=429), LLMThrottledError),
        (Reply(fault="status", status=429, error="ModelNotReadyException"), LLMUnavailableError),
        (Reply(fault="status", status=503), LLMUnavailableError),
        (Reply(fault="status", status=500), LLMUnavailableError),
        (Reply(fault="status", status=403), LLMAccessDeniedError),
        (Reply(fault="status", status=404), LLMAccessDeniedError),
        (Reply(fault="drop"), LLMUnavailableError),
    ],
)
def test_request_failures_are_domain_errors(
    bedrock: BedrockStandIn, brain: ScriptedBrain, reply: Reply, error: type[LLMError]
) -> None:
    brain.push(reply)
    with pytest.raises(error):
        list(model().stream(REQUEST))


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(tokens=split_tokens("one two three four"), fault="cut", cut_after=2), LLMStreamBrokenError),
        (Reply(tokens=split_tokens("one two three four"), fault="exception", cut_after=2), LLMStreamBrokenError),
        (
            Reply(
                tokens=split_tokens("one two three four"), fault="exception", cut_after=2, error="throttlingException"
            ),
            LLMThrottledError,
        ),
    ],
)
def test_a_stream_that_breaks_half_way_fails_after_what_it_said(
    bedrock: BedrockStandIn, brain: ScriptedBrain, reply: Reply, error: type[LLMError]
) -> None:
    brain.push(reply)
    events: list[Any] = []
    with pytest.raises(error):
        events.extend(model().stream(REQUEST))
    assert spoken(events) == "one two"


def test_a_silent_stream_ends_at_the_read_timeout(bedrock: BedrockStandIn, brain: ScriptedBrain) -> None:
    brain.push(Reply(fault="stall"))
    started = time.monotonic()
    with pytest.raises(LLMStreamBrokenError):
        list(model(read_timeout_s=0.5).stream(REQUEST))
    assert time.monotonic() - started < 3


def test_a_request_the_service_refuses_is_rejected_and_its_message_stays_out_of_the_logs(
    bedrock: BedrockStandIn,
) -> None:
    client = model().client()
    bad = {"modelId": MODEL, "messages": [{"role": "assistant", "content": [{"text": "secret reply words"}]}]}
    with captured_logs() as logs:
        from voice_agent.adapters.bedrock_chat import bedrock_errors

        with pytest.raises(LLMRejectedError), bedrock_errors("converse_stream", MODEL):
            client.converse_stream(**bad)  # type: ignore[arg-type]
    assert bedrock.refused == [
        "A conversation must start with a user message. Try again with a conversation that starts with a user message."
    ]
    assert "secret reply words" not in logs.text and "start with a user message" not in logs.text
    assert [r["error_code"] for r in logs.records()] == ["ValidationException"]


def test_no_prompt_or_reply_text_reaches_the_logs(bedrock: BedrockStandIn, brain: ScriptedBrain) -> None:
    brain.push("Your parcel is at the blue door.", Reply(fault="status", status=503))
    with captured_logs() as logs:
        list(model().stream(REQUEST))
        with pytest.raises(LLMUnavailableError):
            list(model().stream(REQUEST))
    assert "order 1001" not in logs.text and "blue door" not in logs.text and "You are Ada" not in logs.text
    assert "bedrock request failed" in logs.text


def test_an_unreachable_endpoint_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(names.BEDROCK_ENDPOINT_URL, f"http://127.0.0.1:{port}")
    aws_clients.reset_clients()
    try:
        with pytest.raises(LLMUnavailableError):
            model().stream(REQUEST)
    finally:
        aws_clients.reset_clients()


def test_missing_credentials_are_access_denied(bedrock: BedrockStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance for a role
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a cold start: no credentials resolved yet
    aws_clients.reset_clients()
    with pytest.raises(LLMAccessDeniedError):
        model().stream(REQUEST)
    assert list(bedrock.requests) == []  # refused before anything was sent


def test_warm_up_builds_the_client_without_a_request(bedrock: BedrockStandIn) -> None:
    m = model()
    m.warm()
    assert list(bedrock.requests) == []
    BedrockChatModel(model=MODEL, connect_timeout_s=1, read_timeout_s=1, client=_broken).warm()  # never raises


def _broken() -> Any:
    raise RuntimeError("no client today")


def test_each_call_keeps_its_tool_ids_in_its_own_request(bedrock: BedrockStandIn, brain: ScriptedBrain) -> None:
    """Tool ids another model gave (OpenAI's call_...) are made to fit Bedrock and stay paired."""
    request = ChatRequest(
        messages=(
            ChatMessage("user", "Order 1001?"),
            ChatMessage("assistant", "", tool_calls=(ToolCall("call_0_17.3", "lookup_order", "{}"),)),
            ChatMessage("tool", "{}", tool_call_id="call_0_17.3"),
        ),
        tools=(LOOKUP,),
    )
    brain.push("Found it.")
    assert spoken(list(model().stream(request))) == "Found it."
    assert bedrock.refused == []
