"""Two agents on one local stack, routed by the number called: each call hears its agent's
greeting, talks to its agent's prompt, and is transferred to its agent's target."""

from __future__ import annotations

import asyncio

import pytest

from local.caller import scenario
from local.demo_model import DemoBrain
from local.stack import LocalStack
from tests.e2e.conftest import AUTH_TOKEN, explain, run, scripted
from tests.e2e.test_call_records import wait_for_record

pytestmark = pytest.mark.timeout(120)


def call_to(number: str, greeting: str, dial: str) -> scenario.Scenario:
    return scripted(
        [
            {"say": "Can you check order 1001?", "expect": "cordless drill"},
            {"say": "Thanks. Can I talk to a real person?", "expect_end": True},
        ],
        name=f"to-{number}",
        caller={"think_s": 0.05, "to": number, "from": "+15555550123"},
        expect={"greeting": greeting, "outcome": "transferred", "dial": dial},
    )


def test_each_number_reaches_its_own_agent(stack: LocalStack, brain: DemoBrain) -> None:
    before = len(brain.recorded())

    async def both() -> tuple[scenario.ScenarioResult, scenario.ScenarioResult]:
        return await asyncio.gather(
            scenario.run(
                call_to("+15555550188", "Sales desk, this is Sal", "+15555550111"),
                voice_url=stack.urls.voice,
                auth_token=AUTH_TOKEN,
                out=lambda _: None,
            ),
            scenario.run(
                call_to("+15555550199", "this is Ada", "+15555550100"),
                voice_url=stack.urls.voice,
                auth_token=AUTH_TOKEN,
                out=lambda _: None,
            ),
        )

    results = run(both(), timeout_s=90)
    failed = [explain(r) for r in results if not r.passed]
    assert not failed, "\n\n".join(failed)
    prompts = {r["messages"][0]["content"].splitlines()[0] for r in brain.recorded()[before:]}
    assert "You are Sal, the sales assistant of Example Hardware." in prompts  # rendered, per agent
    assert any(p.startswith("You are Ada") for p in prompts)
    # Each call's record names its own agent and transfer target.
    sales, front = (wait_for_record(stack, r.call.call_sid, timeout_s=20)[0] for r in results)
    assert (sales["agent"], sales["transfer"]["target"]) == ("Sal", "+15555550111")
    assert (front["agent"], front["transfer"]["target"]) == ("Ada", "+15555550100")
