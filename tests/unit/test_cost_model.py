"""The cost model: counts and assumptions in, dollars per 1,000 call-minutes out (pure arithmetic)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.cost import Assumptions, Usage, aws_lines, model, render, usage_from_results
from bench.prices import PRICES

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def total(usage: Usage, assumptions: Assumptions) -> float:
    return sum(line.usd for line in aws_lines(usage, assumptions))


def test_the_message_functions_duration_is_most_of_the_aws_bill() -> None:
    lines = {line.item: line.usd for line in aws_lines(Usage(), Assumptions())}
    busiest = max(lines, key=lambda item: lines[item])
    assert busiest == "Lambda duration, message function"
    # 4 turns x 3 s + 1 frame x 0.1 s, a minute, at 1 GB: 12,100 GB-s per 1,000 minutes.
    assert lines[busiest] == pytest.approx(12_100 * PRICES.lambda_arm64_per_gb_second)


def test_every_counted_request_is_priced() -> None:
    base = total(Usage(), Assumptions())
    more_frames = total(dataclasses.replace(Usage(), frames_per_reply=Usage().frames_per_reply + 1), Assumptions())
    # One more frame a reply: 4,000 more messages and 4,000 more claims per 1,000 minutes.
    expected = 4_000 * (PRICES.websocket_message_per_million + PRICES.dynamodb_write_unit_per_million) / 1e6
    assert more_frames - base == pytest.approx(expected)


def test_counts_come_from_a_bench_run() -> None:
    results = {
        "counts_for_cost": {
            "reply_tokens": 50,
            "frames_per_reply": 7,
            "dynamodb_writes_per_turn": 3,
            "log_bytes_per_turn": 2000,
        }
    }
    usage = usage_from_results(results, reply_tokens=50)
    assert usage.frames_per_reply == 7
    assert usage.log_bytes_per_turn == 2000
    assert usage.dynamodb_claims_per_frame == Usage().dynamodb_claims_per_frame  # not measured: default
    # Frames counted for another reply length do not apply.
    assert usage_from_results(results, reply_tokens=80).frames_per_reply == Usage().frames_per_reply
    assert usage_from_results({}, reply_tokens=50) == Usage()


def test_the_deploy_guide_shows_the_models_output() -> None:
    # docs/deploy.md's cost tables are `make cost MARKDOWN=1` on the defaults: regenerate them
    # when a price, a count or an assumption changes.
    table = render(model(Usage(), Assumptions()), markdown=True)
    assert table in DEPLOY_DOC.read_text(encoding="utf-8")


def test_each_calls_record_and_timers_are_priced_per_1000_calls() -> None:
    from bench.cost import AfterCall, after_call_lines

    base = sum(line.usd for line in after_call_lines(AfterCall()))
    one_more_timer = dataclasses.replace(AfterCall(), timers_per_call=AfterCall().timers_per_call + 1)
    more = sum(line.usd for line in after_call_lines(one_more_timer))
    # 1,000 more timers: 3 SQS requests, one invocation of 0.05 s at 512 MB, one write unit, logs.
    expected = (
        3_000 * PRICES.sqs_request_per_million / 1e6
        + 1_000 * PRICES.lambda_request_per_million / 1e6
        + 1_000 * 0.05 * 0.5 * PRICES.lambda_arm64_per_gb_second
        + 1_000 * PRICES.dynamodb_write_unit_per_million / 1e6
        + 1_000 * AfterCall().log_bytes_per_invocation / 1e9 * PRICES.logs_ingestion_per_gb
    )
    assert more - base == pytest.approx(expected)
    lines = {line.item: line.usd for line in after_call_lines(AfterCall())}
    assert lines["S3 PUT"] == pytest.approx(1_000 * PRICES.s3_put_per_thousand / 1e3)
    assert lines["EventBridge events"] == pytest.approx(1_000 * PRICES.eventbridge_event_per_million / 1e6)
    assert base < 0.10  # cents per thousand calls: nothing next to a call's telephony
