"""What the benchmark counts each DynamoDB request as (a timer's line is not a phrase's claim)."""

from __future__ import annotations

from bench import counters as c


def test_requests_are_counted_by_what_they_are_for() -> None:
    def update(expression: str, condition: str = "") -> str:
        return c.classify("UpdateItem", {"UpdateExpression": expression, "ConditionExpression": condition})

    assert update("SET spokenGen = :g, spokenText = :spoken REMOVE pending", "gen = :g") == c.CLAIM
    assert update("ADD gen :one SET pending = list_append(pending, :mine)") == c.START_TURN
    assert update("ADD gen :one", "attribute_exists(pk) AND gen = spokenGen") == c.INTERRUPT
    # A reminder that fires after the caller spoke fails its condition and posts nothing: counted
    # as a claim, it made "one claim per posted frame" look false.
    assert update("SET gen = :next, spokenGen = :next, spokenDone = :next, spokenText = :spoken") == c.TIMER_LINE
    assert update("SET gen = gen + :one, spokenGen = gen + :one, spokenDone = gen + :one") == c.TIMER_LINE
    assert update("SET #status = :open", "#status = :binding") == c.OTHER
    assert c.classify("Query", {}) == c.HISTORY
    assert c.classify("PutItem", {}) == c.TURN_WRITE
