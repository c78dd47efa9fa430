"""Whatever the model does wrong, on either provider, the caller hears the short apology and the
next turn is answered: the production wiring through the entry points (moto for AWS), each
provider's real client against its stand-in, faults injected by the stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from local.bedrock_server import BedrockStandIn
from local.demo_model import ABOUT, HOURS
from local.openai_server import OpenAICompatibleServer, Reply, split_tokens
from tests.support.aws import create_table, posted_frames
from tests.support.events import FakeLambdaContext, message_event, relay_frame
from tests.support.local_calls import RoutingBrain
from voice_agent import env_names as names
from voice_agent import wiring
from voice_agent.agent.config import AGENT
from voice_agent.entry import ws_message

FAULTS: dict[str, list[Reply]] = {
    "throttled": [Reply(fault="status", status=429)] * 3,  # the request and the client's retry
    "unavailable": [Reply(fault="status", status=503)] * 3,
    "dropped": [Reply(fault="drop")] * 3,
    "cut": [Reply(tokens=split_tokens(ABOUT), fault="cut", cut_after=12)],
    "stream error": [Reply(tokens=split_tokens(ABOUT), fault="exception", cut_after=12)],
}


@pytest.fixture(params=["bedrock", "openai"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def brain() -> RoutingBrain:
    return RoutingBrain()


@pytest.fixture
def stand_in(brain: RoutingBrain, provider: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(names.LLM_PROVIDER, provider)
    with mock_aws():
        import boto3

        create_table(boto3.client("dynamodb", region_name="us-east-1"))
        if provider == "openai":
            with OpenAICompatibleServer(brain) as server:
                monkeypatch.setenv(names.OPENAI_BASE_URL, server.base_url)
                wiring.reset()
                yield server
            return
        with BedrockStandIn(brain) as bedrock:
            monkeypatch.setenv(names.BEDROCK_ENDPOINT_URL, bedrock.endpoint_url)
            wiring.reset()
            yield bedrock
        assert bedrock.refused == []


def say(connection_id: str, text: str) -> str:
    before = len(posted_frames(connection_id))
    ws_message.handler(message_event(connection_id, relay_frame("prompt", voicePrompt=text)), FakeLambdaContext())
    frames = posted_frames(connection_id)[before:]
    assert frames and frames[-1]["type"] == "text" and frames[-1]["last"] is True
    return "".join(f["token"] for f in frames if f["type"] == "text")


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_model_failure_is_the_apology_and_the_call_goes_on(stand_in: Any, brain: RoutingBrain, fault: str) -> None:
    marker = f"broken{fault.replace(' ', '')}"
    brain.script(marker, *FAULTS[fault])
    ws_message.handler(message_event("c1", relay_frame("setup")), FakeLambdaContext())
    failed = say("c1", f"Hello, {marker} here. Tell me about the store.")
    assert failed.endswith(AGENT.lines.apology)
    if fault in ("cut", "stream error"):  # what streamed before the break was spoken first
        before = failed.removesuffix(AGENT.lines.apology).strip()
        assert before and ABOUT.startswith(before)
    else:
        assert failed == AGENT.lines.apology
    assert say("c1", "When are you open?") == HOURS
