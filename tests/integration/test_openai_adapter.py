"""The OpenAI adapter through the real ``openai`` SDK against an OpenAI-compatible loopback server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from local.openai_server import OpenAICompatibleServer, Reply, ScriptedBrain, ToolCallReply, split_tokens
from voice_agent.adapters.openai_chat import OpenAIChatModel
from voice_agent.core.model import ChatMessage, ChatRequest, StreamFinished, TextDelta, ToolCall, ToolSpec
from voice_agent.errors import LLMError


@pytest.fixture
def brain() -> ScriptedBrain:
    return ScriptedBrain()


@pytest.fixture
def server(brain: ScriptedBrain) -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(brain) as s:
        yield s


def model_for(server: OpenAICompatibleServer, key: str | None = "sk-test", **kw: object) -> OpenAIChatModel:
    options: dict[str, object] = {"connect_timeout_s": 1.0, "read_timeout_s": 1.0, "max_retries": 0}
    options.update(kw)
    return OpenAIChatModel(model="test-model", api_key=lambda: key, base_url=server.base_url, **options)  # type: ignore[arg-type]


REQUEST = ChatRequest(
    messages=(
        ChatMessage(role="system", content="sys"),
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content="", tool_calls=(ToolCall("c1", "lookup_order", '{"order_id":"1"}'),)),
        ChatMessage(role="tool", content='{"found":"no"}', tool_call_id="c1"),
    ),
    tools=(ToolSpec("lookup_order", "Look up", {"type": "object", "properties": {}}),),
    max_tokens=50,
    temperature=0.3,
)


def test_streams_text_and_sends_the_request_in_openai_shape(
    server: OpenAICompatibleServer, brain: ScriptedBrain
) -> None:
    brain.push("Hello there.")
    events = list(model_for(server).stream(REQUEST))
    assert [e.text for e in events if isinstance(e, TextDelta)] == split_tokens("Hello there.")
    assert events[-1] == StreamFinished(finish_reason="stop", tool_calls=())
    sent = brain.requests[0]
    assert sent["model"] == "test-model"
    assert sent["stream"] is True
    assert sent["max_completion_tokens"] == 50
    assert sent["temperature"] == 0.3
    assert sent["tools"][0]["function"]["name"] == "lookup_order"
    assert sent["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id":"1"}'}}
        ],
    }
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": '{"found":"no"}'}


def test_streamed_tool_calls_are_assembled(server: OpenAICompatibleServer, brain: ScriptedBrain) -> None:
    brain.push(
        Reply(
            tokens=split_tokens("Let me check."),
            tool_calls=[
                ToolCallReply("lookup_order", {"order_id": "1001"}, id="call_a"),
                ToolCallReply("end_call", {}),
            ],
        )
    )
    final = list(model_for(server).stream(REQUEST))[-1]
    assert isinstance(final, StreamFinished)
    assert final.finish_reason == "tool_calls"
    assert [(c.id, c.name, json.loads(c.arguments)) for c in final.tool_calls] == [
        ("call_a", "lookup_order", {"order_id": "1001"}),
        (final.tool_calls[1].id, "end_call", {}),
    ]


@pytest.mark.parametrize(
    "reply", [Reply(fault="status", status=500), Reply(fault="status", status=429), Reply(fault="drop")]
)
def test_request_failures_are_llm_errors(server: OpenAICompatibleServer, brain: ScriptedBrain, reply: Reply) -> None:
    brain.push(reply)
    with pytest.raises(LLMError):
        list(model_for(server).stream(REQUEST))


def test_a_stream_cut_half_way_is_an_llm_error(server: OpenAICompatibleServer, brain: ScriptedBrain) -> None:
    brain.push(Reply(tokens=split_tokens("one two three four"), fault="cut", cut_after=2))
    events: list[object] = []

    def consume() -> None:
        events.extend(model_for(server).stream(REQUEST))

    with pytest.raises(LLMError):
        consume()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["one", " two"]


def test_a_silent_stream_times_out(server: OpenAICompatibleServer, brain: ScriptedBrain) -> None:
    brain.push(Reply(fault="stall"))
    with pytest.raises(LLMError):
        list(model_for(server, read_timeout_s=0.5).stream(REQUEST))


def test_connection_refused_is_an_llm_error() -> None:
    model = OpenAIChatModel(
        model="m",
        api_key=lambda: "k",
        base_url="http://127.0.0.1:9/v1",
        connect_timeout_s=0.5,
        read_timeout_s=0.5,
        max_retries=0,
    )
    with pytest.raises(LLMError):
        model.stream(REQUEST)


def test_a_key_is_required_unless_a_base_url_is_set(server: OpenAICompatibleServer, brain: ScriptedBrain) -> None:
    no_key_anywhere = OpenAIChatModel(
        model="m", api_key=lambda: None, base_url=None, connect_timeout_s=1, read_timeout_s=1
    )
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        no_key_anywhere.stream(REQUEST)
    brain.push("ok")
    assert list(model_for(server, key=None).stream(REQUEST))  # local servers need no key


def test_warm_up_loads_the_client_and_tolerates_servers_without_models(server: OpenAICompatibleServer) -> None:
    model = model_for(server)
    model.warm()
    assert model._client is not None
    broken = OpenAIChatModel(
        model="m", api_key=lambda: "k", base_url="http://127.0.0.1:9/v1", connect_timeout_s=0.2, read_timeout_s=0.2
    )
    broken.warm()  # best effort: never raises


def test_closing_a_stream_cancels_the_request(server: OpenAICompatibleServer, brain: ScriptedBrain) -> None:
    import time

    brain.push(Reply(tokens=split_tokens("word " * 200), token_interval_s=0.01))
    stream = model_for(server).stream(REQUEST)
    iterator = iter(stream)
    next(iterator)
    stream.close()
    deadline = time.monotonic() + 3
    while server.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.cancelled == 1
