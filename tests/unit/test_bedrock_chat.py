"""The Bedrock adapter without a network: error mapping (botocore's Stubber), reading the event
stream, the thinking filter, and the stand-in's event-stream encoding against botocore's decoder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import EventStreamError, ReadTimeoutError
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from local.bedrock_server import encode_message, event, exception_event
from voice_agent.adapters.bedrock_chat import BedrockChatModel, BedrockChatStream, ThinkingFilter, error_for
from voice_agent.core.model import ChatMessage, ChatRequest, StreamFinished, TextDelta, TokenUsage, ToolCall
from voice_agent.errors import (
    LLMAccessDeniedError,
    LLMError,
    LLMRejectedError,
    LLMStreamBrokenError,
    LLMThrottledError,
    LLMUnavailableError,
)

MODEL = "us.amazon.nova-lite-v1:0"
REQUEST = ChatRequest(messages=(ChatMessage("system", "sys"), ChatMessage("user", "When are you open?")))


# -- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 429, LLMThrottledError),
        ("ServiceQuotaExceededException", 400, LLMThrottledError),
        ("ModelNotReadyException", 429, LLMUnavailableError),
        ("ServiceUnavailableException", 503, LLMUnavailableError),
        ("InternalServerException", 500, LLMUnavailableError),
        ("ModelTimeoutException", 408, LLMUnavailableError),
        ("ModelErrorException", 424, LLMUnavailableError),
        ("ValidationException", 400, LLMRejectedError),
        ("AccessDeniedException", 403, LLMAccessDeniedError),
        ("ResourceNotFoundException", 404, LLMAccessDeniedError),
        ("UnrecognizedClientException", 403, LLMAccessDeniedError),
        ("SomethingNewException", 429, LLMThrottledError),
        ("SomethingNewException", 502, LLMUnavailableError),
        ("SomethingNewException", 400, LLMRejectedError),
    ],
)
def test_every_service_error_is_a_domain_error(code: str, status: int, expected: type[LLMError]) -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    model = BedrockChatModel(model=MODEL, connect_timeout_s=1, read_timeout_s=1, client=lambda: client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "converse_stream", service_error_code=code, service_message="quoted 'secret words'", http_status_code=status
        )
        with pytest.raises(expected) as raised:
            model.stream(REQUEST)
    assert type(raised.value) is expected
    assert code in str(raised.value)
    assert "secret words" not in str(raised.value)  # the service's message can quote the request


def test_errors_inside_the_stream_keep_their_meaning() -> None:
    def in_stream(code: str) -> LLMError:
        return error_for(EventStreamError({"Error": {"Code": code, "Message": "m"}}, "ConverseStream"), streaming=True)

    assert isinstance(in_stream("throttlingException"), LLMThrottledError)
    assert isinstance(in_stream("modelStreamErrorException"), LLMStreamBrokenError)
    assert isinstance(in_stream("serviceUnavailableException"), LLMUnavailableError)
    assert isinstance(in_stream("validationException"), LLMRejectedError)
    assert isinstance(error_for(ReadTimeoutError(endpoint_url="x"), streaming=True), LLMStreamBrokenError)
    assert isinstance(error_for(ReadTimeoutError(endpoint_url="x"), streaming=False), LLMUnavailableError)
    assert isinstance(error_for(ConnectionResetError(), streaming=True), LLMStreamBrokenError)


# -- reading the event stream -------------------------------------------------------------------------


class FakeEventStream:
    """What botocore's EventStream yields, from a list (an exception stands for a failure)."""

    def __init__(self, events: list[dict[str, Any] | BaseException]) -> None:
        self._events = events
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for e in self._events:
            if isinstance(e, BaseException):
                raise e
            yield e

    def close(self) -> None:
        self.closed = True


def delta(text: str, index: int = 0) -> dict[str, Any]:
    return {"contentBlockDelta": {"contentBlockIndex": index, "delta": {"text": text}}}


def tool_events(index: int, tool_use_id: str, name: str, *parts: str) -> list[dict[str, Any]]:
    start = {
        "contentBlockStart": {
            "contentBlockIndex": index,
            "start": {"toolUse": {"toolUseId": tool_use_id, "name": name}},
        }
    }
    deltas = [{"contentBlockDelta": {"contentBlockIndex": index, "delta": {"toolUse": {"input": p}}}} for p in parts]
    return [start, *deltas, {"contentBlockStop": {"contentBlockIndex": index}}]


STOP = {"messageStop": {"stopReason": "end_turn"}}
USAGE = {
    "metadata": {"usage": {"inputTokens": 812, "outputTokens": 9, "totalTokens": 821}, "metrics": {"latencyMs": 420}}
}


def read(events: list[dict[str, Any] | BaseException], **kw: Any) -> list[Any]:
    return list(BedrockChatStream(FakeEventStream(events), model=MODEL, **kw))  # type: ignore[arg-type]


def test_text_streams_as_it_comes_and_the_finish_carries_stop_reason_and_usage() -> None:
    usages: list[tuple[str, TokenUsage]] = []
    events = read(
        [{"messageStart": {"role": "assistant"}}, delta("We open"), delta(" at nine."), STOP, USAGE],
        on_usage=lambda m, u: usages.append((m, u)),
    )
    assert events == [
        TextDelta("We open"),
        TextDelta(" at nine."),
        StreamFinished(finish_reason="stop", tool_calls=(), usage=TokenUsage(812, 9)),
    ]
    assert usages == [(MODEL, TokenUsage(812, 9))]


def test_tool_calls_are_assembled_from_their_blocks() -> None:
    events = read(
        [
            delta("Let me look."),
            *tool_events(1, "tooluse_a", "lookup_order", '{"order_', 'id": "1001"}'),
            *tool_events(2, "tooluse_b", "end_call"),
            {"messageStop": {"stopReason": "tool_use"}},
            USAGE,
        ]
    )
    final = events[-1]
    assert isinstance(final, StreamFinished)
    assert final.finish_reason == "tool_calls"
    assert final.tool_calls == (
        ToolCall("tooluse_a", "lookup_order", '{"order_id": "1001"}'),
        ToolCall("tooluse_b", "end_call", "{}"),
    )


@pytest.mark.parametrize(
    ("stop", "finish"),
    [("max_tokens", "length"), ("guardrail_intervened", "content_filter"), ("stop_sequence", "stop")],
)
def test_stop_reasons_read_as_finish_reasons(stop: str, finish: str) -> None:
    final = read([delta("Hi."), {"messageStop": {"stopReason": stop}}])[-1]
    assert final.finish_reason == finish


def test_a_stream_that_ends_without_message_stop_is_broken() -> None:
    with pytest.raises(LLMStreamBrokenError):
        read([delta("We open")])


def test_a_stream_that_breaks_half_way_is_broken_after_what_it_said() -> None:
    said: list[Any] = []
    stream = BedrockChatStream(FakeEventStream([delta("We open"), ConnectionResetError()]), model=MODEL)  # type: ignore[arg-type]
    with pytest.raises(LLMStreamBrokenError):
        said.extend(stream)
    assert said == [TextDelta("We open")]


def test_unusable_model_output_fails_the_turn() -> None:
    with pytest.raises(LLMUnavailableError):
        read([{"messageStop": {"stopReason": "malformed_tool_use"}}])


def test_a_stream_closed_on_purpose_ends_quietly() -> None:
    stream = BedrockChatStream(FakeEventStream([delta("We open")]), model=MODEL)  # type: ignore[arg-type]
    stream.close()
    assert list(stream) == [TextDelta("We open")]  # no error for a cancelled turn


def test_thinking_aloud_is_not_spoken() -> None:
    events = read(
        [
            delta("<think"),
            delta("ing>The caller wants order 1001; I will call lookup_order.</thi"),
            delta("nking>\n\n"),
            delta("Let me look that up."),
            *tool_events(1, "t1", "lookup_order", "{}"),
            {"messageStop": {"stopReason": "tool_use"}},
        ]
    )
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me look that up."


@given(
    st.lists(
        st.sampled_from(["Hi", " there", "<thinking>", "plan", "</thinking>", "\n", "<", "a < b", "."]), max_size=12
    ),
    st.data(),
)
def test_the_thinking_filter_removes_exactly_the_thinking_however_the_text_is_split(
    parts: list[str], data: st.DataObject
) -> None:
    text = "".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    f = ThinkingFilter()
    assert "".join([*(f.feed(p) for p in pieces), f.flush()]) == _without_thinking(text)


def _without_thinking(text: str) -> str:
    out, rest, trim = [], text, False
    while True:
        start = rest.find(ThinkingFilter.OPEN)
        if start < 0:
            out.append(rest.lstrip() if trim else rest)
            return "".join(out)
        kept = rest[:start]
        out.append(kept.lstrip() if trim else kept)
        trim = trim and not kept.strip()
        end = rest.find(ThinkingFilter.CLOSE, start)
        if end < 0:
            return "".join(out)
        rest, trim = rest[end + len(ThinkingFilter.CLOSE) :], True


# -- the stand-in's encoding, read back by botocore ---------------------------------------------------


def decode(data: bytes) -> list[Any]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_events_encode_as_botocore_decodes_them() -> None:
    data = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo"}}) + exception_event(
        "throttlingException", "slow down"
    )
    first, second = decode(data)
    assert first.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(first.payload)["delta"] == {"text": "héllo"}
    assert second.headers[":exception-type"] == "throttlingException"
    assert second.to_response_dict()["status_code"] == 400


def test_a_corrupted_message_fails_its_checksum() -> None:
    data = bytearray(encode_message({":event-type": "messageStop"}, b'{"stopReason":"end_turn"}'))
    data[-6] ^= 0x01
    with pytest.raises(ChecksumMismatch):
        decode(bytes(data))
