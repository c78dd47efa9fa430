"""Reliability and security through the local stack: faults injected behind the agent, bad input
at its edges, load, and privacy, all driven by the simulated Twilio caller over real sockets.

One stack for the tier (DynamoDB Local when Java is present, moto server otherwise). Its model is
the demo model, except for calls whose speech carries a marker a test scripted (``RoutingBrain``).
Tests that break something (the model's address, DynamoDB, the gateway's timeout) restore it.

``RELIABILITY_FULL=1`` (``make load``) runs the full sizes: 100 calls of 10 turns, API Gateway's
real 29 s integration timeout. Without it (``make test``) the same tests run reduced and scaled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from local.dynamodb import client
from local.stack import LocalStack, StackOptions
from tests.conftest import TEST_AGENTS_DIR
from tests.support.local_calls import RoutingBrain
from voice_agent import env_names as names

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AUTH_TOKEN = "reliability-auth-token-0123456789abcdef"
OPENAI_KEY = "sk-reliability-test-key-do-not-log-0123456789"
FULL = os.environ.get("RELIABILITY_FULL", "").strip() == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def brain() -> RoutingBrain:
    return RoutingBrain()


@pytest.fixture(scope="session")
def stack(brain: RoutingBrain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        http_port=0,
        ws_port=0,
        llm="demo",
        # The tier's faults are scripted for the OpenAI path (its status codes, its base URL); the
        # Bedrock path's are covered by tests/integration/test_bedrock_adapter.py and the e2e tier.
        provider="openai",
        brain=brain,
        twilio_auth_token=AUTH_TOKEN,
        table_name="reliability-sessions",
        model_ttft_s=0.1,
        model_token_interval_s=0.015,
        # A key the logs must never show (the demo model ignores it).
        # The tests' own agents (tests/fixtures/agents), not the fork's.
        extra_env={names.OPENAI_API_KEY: OPENAI_KEY, names.AGENTS_DIR: str(TEST_AGENTS_DIR)},
        records_dir=tmp_path_factory.mktemp("calls"),  # not the developer's .local/calls
    )
    with LocalStack(options) as running:
        yield running


@pytest.fixture(autouse=True)
def isolated_env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides the repository-wide fixture: every test runs with the running stack's environment."""
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def dynamodb(stack: LocalStack) -> DynamoDBClient:
    return client(stack.urls.dynamodb)


class ErrorFrames:
    """API Gateway error frames written into sockets since this object was made (each is a bug)."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.gateway is not None
        self._gateway = stack.gateway
        self._before = stack.gateway.error_frames

    @property
    def new(self) -> int:
        return self._gateway.error_frames - self._before


@pytest.fixture
def error_frames(stack: LocalStack) -> ErrorFrames:
    return ErrorFrames(stack)
