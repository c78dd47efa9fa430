"""A whole conversation through the Lambda entry points, with the production wiring: moto for
DynamoDB and the management API, and each model provider through its real client: ``openai``
talking to an OpenAI-compatible server on loopback, boto3's ``bedrock-runtime`` talking to the
Bedrock stand-in (which refuses any request the real service would refuse)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from local.bedrock_server import BedrockStandIn
from local.openai_server import OpenAICompatibleServer, Reply, ScriptedBrain, split_tokens
from tests.conftest import TEST_ENV
from tests.support.aws import create_table, posted_frames
from tests.support.events import (
    FakeLambdaContext,
    connect_event,
    disconnect_event,
    message_event,
    relay_frame,
)
from voice_agent import env_names as names
from voice_agent import wiring
from voice_agent.adapters.bedrock_messages import CALL_START_NOTE
from voice_agent.agent.config import AGENT
from voice_agent.entry import ws_connect, ws_disconnect, ws_message
from voice_agent.signatures import sign

CALL = "CA00000000000000000000000000000001"
LONG = (
    "Life is a complex set of processes, and people have argued about its meaning for thousands of "
    "years; some find it in family, some in work, and some in simply paying attention to the world."
)


@pytest.fixture
def brain() -> ScriptedBrain:
    return ScriptedBrain()


@pytest.fixture(params=["bedrock", "openai"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def llm(
    brain: ScriptedBrain, provider: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpenAICompatibleServer | BedrockStandIn]:
    monkeypatch.setenv(names.LLM_PROVIDER, provider)
    if provider == "openai":
        with OpenAICompatibleServer(brain, ttft_s=0.02, token_interval_s=0.005) as server:
            monkeypatch.setenv(names.OPENAI_BASE_URL, server.base_url)
            wiring.reset()
            yield server
        return
    with BedrockStandIn(brain, ttft_s=0.02, token_interval_s=0.005) as bedrock:
        monkeypatch.setenv(names.BEDROCK_ENDPOINT_URL, bedrock.endpoint_url)
        wiring.reset()
        yield bedrock
    assert bedrock.refused == []  # every request was one the real service accepts


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        import boto3

        create_table(boto3.client("dynamodb", region_name="us-east-1"))
        yield


def signed_connect(connection_id: str) -> dict[str, Any]:
    signature = sign(TEST_ENV["TWILIO_AUTH_TOKEN"], TEST_ENV["RELAY_PUBLIC_URL"])
    return connect_event(connection_id, headers={"X-Twilio-Signature": signature})


def send(connection_id: str, body: str | None) -> dict[str, Any]:
    return ws_message.handler(message_event(connection_id, body), FakeLambdaContext())


def texts(connection_id: str) -> list[dict[str, Any]]:
    return [f for f in posted_frames(connection_id) if f["type"] == "text"]


def spoken(frames: list[dict[str, Any]]) -> str:
    return "".join(f["token"] for f in frames)


def prompt(text: str) -> str:
    return relay_frame("prompt", voicePrompt=text)


def as_the_model_sees_it(provider: str, turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The conversation as each provider's request carries it: Bedrock starts with a note in the
    user role before a greeting, and joins consecutive messages of one role."""
    if provider == "openai":
        return turns
    out = [("user", CALL_START_NOTE)] if turns and turns[0][0] == "assistant" else []
    for role, content in turns:
        if out and out[-1][0] == role:
            out[-1] = (role, out[-1][1] + "\n\n" + content)
        else:
            out.append((role, content))
    return out


def test_a_whole_conversation_interrupt_and_resume(
    aws: None, llm: OpenAICompatibleServer | BedrockStandIn, brain: ScriptedBrain, provider: str
) -> None:
    ctx = FakeLambdaContext()
    # 1. Twilio opens the socket (signed) and sends setup.
    assert ws_connect.handler(signed_connect("conn-1"), ctx) == {"statusCode": 200}
    assert send("conn-1", relay_frame("setup")) == {"statusCode": 200}

    # 2. A first prompt gets a streamed reply ending with last: true.
    brain.push("The store opens at nine, and closes at six.")
    send("conn-1", prompt("When do you open?"))
    first = texts("conn-1")
    assert spoken(first) == "The store opens at nine, and closes at six."
    assert [f["last"] for f in first] == [False] * (len(first) - 1) + [True]

    # 3. A second prompt is interrupted mid-reply by an interrupt handled concurrently.
    brain.push(Reply(tokens=split_tokens(LONG * 3), token_interval_s=0.03))
    before = len(posted_frames("conn-1"))
    worker = threading.Thread(target=send, args=("conn-1", prompt("Tell me about life")))
    worker.start()
    deadline = time.monotonic() + 10
    while len(posted_frames("conn-1")) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    heard_so_far = spoken(texts("conn-1")[len(first) :])
    heard = heard_so_far[: max(5, len(heard_so_far) // 2)]
    send("conn-1", relay_frame("interrupt", utteranceUntilInterrupt=heard, durationUntilInterruptMs=str(900)))
    worker.join(10)
    second = texts("conn-1")[len(first) :]
    assert not any(f["last"] for f in second)  # stopped: no `last`
    assert len(spoken(second)) < len(LONG)  # far from the whole reply
    # The model request was cancelled: the server's next write to the closed stream fails.
    deadline = time.monotonic() + 3
    while llm.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert llm.cancelled == 1

    # 4. The third prompt's model request carries the truncated history.
    brain.push("Sure, what else would you like to know?")
    send("conn-1", prompt("Sorry, go on"))
    third_request = brain.requests[-1]["messages"]
    assert third_request[0]["role"] == "system"
    so_far = [
        ("assistant", AGENT.lines.welcome_greeting),
        ("user", "When do you open?"),
        ("assistant", "The store opens at nine, and closes at six."),
        ("user", "Tell me about life"),
        ("assistant", heard),
    ]
    third = [(m["role"], m["content"]) for m in third_request[1:]]
    assert third == as_the_model_sees_it(provider, [*so_far, ("user", "Sorry, go on")])

    # 5. The socket drops; a new connection with the same callSid resumes the conversation.
    assert ws_disconnect.handler(disconnect_event("conn-1", 1006), ctx) == {"statusCode": 200}
    assert ws_connect.handler(signed_connect("conn-2"), ctx) == {"statusCode": 200}
    send("conn-2", relay_frame("setup", sessionId="VX00000000000000000000000000000002", callStatus="IN_PROGRESS"))
    brain.push("We were talking about life.")
    send("conn-2", prompt("Where were we?"))
    resumed = [(m["role"], m["content"]) for m in brain.requests[-1]["messages"][1:]]
    assert resumed == as_the_model_sees_it(
        provider,
        [
            *so_far,
            ("user", "Sorry, go on"),
            ("assistant", "Sure, what else would you like to know?"),
            ("assistant", AGENT.lines.reconnect_greeting),
            ("user", "Where were we?"),
        ],
    )
    assert spoken(texts("conn-2")) == "We were talking about life."


def test_connect_refuses_missing_and_forged_signatures(aws: None) -> None:
    ctx = FakeLambdaContext()
    assert ws_connect.handler(connect_event("c1"), ctx) == {"statusCode": 403}
    forged = connect_event("c1", headers={"X-Twilio-Signature": sign("wrong-token", TEST_ENV["RELAY_PUBLIC_URL"])})
    assert ws_connect.handler(forged, ctx) == {"statusCode": 403}
    other_url = connect_event("c1", headers={"X-Twilio-Signature": sign(TEST_ENV["TWILIO_AUTH_TOKEN"], "wss://x/prod")})
    assert ws_connect.handler(other_url, ctx) == {"statusCode": 403}


def test_connect_without_configuration_fails_closed(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAY_PUBLIC_URL")
    wiring.reset()
    assert ws_connect.handler(signed_connect("c1"), FakeLambdaContext()) == {"statusCode": 500}


def test_bad_frames_are_ignored_without_an_error_frame(
    aws: None, llm: OpenAICompatibleServer | BedrockStandIn, brain: ScriptedBrain
) -> None:
    send("c1", relay_frame("setup"))
    for body in ["not json", '{"type": 7}', '{"type": "prompt"}', json.dumps({"type": "brandNew", "x": 1}), None]:
        assert send("c1", body) == {"statusCode": 200}
    for name in ("error", "info", "prompt_partial"):
        assert send("c1", relay_frame(name)) == {"statusCode": 200}
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    assert "c1" not in apigatewaymanagementapi_backends["123456789012"]["us-east-1"].connections
    brain.push("Still here.")
    send("c1", prompt("Hello?"))
    assert spoken(texts("c1")) == "Still here."


def test_handlers_never_raise_even_when_everything_is_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    # No moto, no table, an unreachable DynamoDB endpoint: every handler still returns normally.
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RELAY_CALLBACK_URL", "http://127.0.0.1:9/prod")
    wiring.reset()
    ctx = FakeLambdaContext()
    assert send("c1", relay_frame("setup")) == {"statusCode": 200}
    assert send("c1", prompt("hi")) == {"statusCode": 200}
    assert send("c1", relay_frame("interrupt")) == {"statusCode": 200}
    assert ws_disconnect.handler(disconnect_event("c1"), ctx) == {"statusCode": 200}
    assert ws_message.handler({"no": "context"}, ctx) == {"statusCode": 200}
    assert ws_disconnect.handler({}, ctx) == {"statusCode": 200}
    assert ws_connect.handler({}, ctx) == {"statusCode": 500}


def test_a_setup_the_store_cannot_keep_asks_action_for_a_restart(
    aws: None, llm: OpenAICompatibleServer | BedrockStandIn, brain: ScriptedBrain
) -> None:
    # DynamoDB fails the binding on every attempt botocore makes: without it the socket would be
    # mute (every prompt on it ignored), so the session ends asking /action for a restart.
    from tests.support.faults import FaultInjector, dynamodb_error
    from voice_agent.adapters import aws_clients
    from voice_agent.core.call_flow import SESSION_RESTART_REASON

    fault = FaultInjector(lambda: dynamodb_error("InternalServerError", 500), times=3)
    fault.attach(aws_clients.dynamodb(), "dynamodb.UpdateItem")
    assert send("c1", relay_frame("setup")) == {"statusCode": 200}
    assert fault.injected == 3
    [end] = posted_frames("c1")
    assert end["type"] == "end"
    assert json.loads(end["handoffData"])["reasonCode"] == SESSION_RESTART_REASON
    # The restarted session's socket binds and is answered.
    brain.push("Back again.")
    send("c2", relay_frame("setup"))
    send("c2", prompt("Hello?"))
    assert spoken(texts("c2")) == "Back again."


def test_dtmf_human_key_hands_off_and_other_keys_reach_the_model(
    aws: None, llm: OpenAICompatibleServer | BedrockStandIn, brain: ScriptedBrain
) -> None:
    send("c1", relay_frame("setup"))
    brain.push("You pressed one.")
    send("c1", relay_frame("dtmf", digit="1"))
    assert brain.requests[-1]["messages"][-1] == {
        "role": "user",
        "content": AGENT.lines.dtmf_note.format(digit="1"),
    }
    calls = len(brain.requests)
    send("c1", relay_frame("dtmf", digit=AGENT.human_key))
    assert len(brain.requests) == calls  # no model round for the human key
    end = posted_frames("c1")[-1]
    assert end["type"] == "end"
    assert json.loads(end["handoffData"])["reasonCode"] == "dtmf-transfer"


def test_setup_warms_the_model_connection(
    aws: None, llm: OpenAICompatibleServer | BedrockStandIn, provider: str
) -> None:
    send("c1", relay_frame("setup"))
    if provider == "openai":
        assert wiring.chat_model()._client is not None  # type: ignore[attr-defined]  # the SDK before the first prompt
        assert "openai.resources.chat.completions" in sys.modules  # loaded on first use otherwise
    else:
        from voice_agent.adapters import aws_clients

        assert isinstance(llm, BedrockStandIn)
        assert aws_clients._bedrock_runtime.cache_info().currsize == 1  # the client is built
        assert list(llm.requests) == []  # without a request (none is free to make)
