"""What the handlers ask of AWS, counted where AWS would bill it: botocore's event hooks on the very
clients the handlers use (the composition root builds each once per process, so hooking them after
the stack starts sees every request), plus the stand-in's record of finished invocations."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

from local.apigw_ws import Invocation

# DynamoDB requests by what they are for (see voice_agent.adapters.dynamo_store).
START_TURN = "start_turn"  # UpdateItem ADD gen (the turn's generation)
HISTORY = "history"  # Query
CLAIM = "claim"  # conditional UpdateItem SET spokenGen (before a phrase)
TURN_WRITE = "turn_write"  # PutItem / BatchWriteItem of turn items
INTERRUPT = "interrupt"
TIMER_LINE = "timer_line"  # a timer's line takes the generation (SET gen = ..., spokenGen = ...)
OTHER = "other"
READS = frozenset({"Query", "GetItem", "BatchGetItem", "Scan"})


def classify(operation: str, params: dict[str, Any]) -> str:
    if operation == "Query":
        return HISTORY
    if operation in ("PutItem", "BatchWriteItem"):
        return TURN_WRITE
    if operation == "UpdateItem":
        update = str(params.get("UpdateExpression", ""))
        condition = str(params.get("ConditionExpression", ""))
        if update.startswith("SET gen ="):
            # A silence reminder or key-entry line (dynamo_timers.py): it fires during a later
            # turn, usually to fail its condition (the caller spoke), and posts nothing then.
            return TIMER_LINE
        if "spokenGen" in update:
            return CLAIM
        if "ADD gen" in update:
            return INTERRUPT if "spokenGen" in condition else START_TURN
    return OTHER


class AwsCounters:
    """DynamoDB requests by purpose and operation, PostToConnection calls, and round-trip times.

    ``network_s``: a round trip added to every request (half before it is sent, half after the
    answer), to play an in-region network on loopback. Sleeping releases the interpreter lock, as
    waiting on a socket does: requests that overlap in AWS overlap here too, which DynamoDB Local
    on loopback (a millisecond or two, mostly client CPU) cannot show.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.purposes: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()
        self.posts = 0
        self.round_trips: dict[str, list[float]] = {}
        self.network_s = 0.0

    def attach(self, dynamodb: Any, management_api: Any) -> None:
        events = dynamodb.meta.events
        events.register("before-parameter-build.dynamodb.*", self._dynamodb_params)
        events.register("before-call.dynamodb.*", self._started)
        events.register("before-send.dynamodb.*", self._half_way)
        events.register("after-call.dynamodb.*", self._finished)
        events = management_api.meta.events
        events.register("before-call.apigatewaymanagementapi.PostToConnection", self._post)
        events.register("before-send.apigatewaymanagementapi.PostToConnection", self._half_way)
        events.register("after-call.apigatewaymanagementapi.PostToConnection", self._finished)

    def reset(self) -> None:
        with self._lock:
            self.purposes.clear()
            self.operations.clear()
            self.posts = 0

    def snapshot(self) -> tuple[Counter[str], Counter[str], int]:
        with self._lock:
            return Counter(self.purposes), Counter(self.operations), self.posts

    def round_trip_ms(self) -> dict[str, list[float]]:
        with self._lock:
            return {k: list(v) for k, v in self.round_trips.items()}

    def reset_round_trips(self) -> None:
        with self._lock:
            self.round_trips.clear()

    def _dynamodb_params(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        purpose = classify(model.name, params)
        context["bench_label"] = f"dynamodb.{purpose}"
        with self._lock:
            self.purposes[purpose] += 1
            self.operations[model.name] += 1

    def _started(self, context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def _post(self, context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()
        context["bench_label"] = "PostToConnection"
        with self._lock:
            self.posts += 1

    def _half_way(self, **_: Any) -> None:
        if self.network_s:
            time.sleep(self.network_s / 2)

    def _finished(self, context: dict[str, Any], **_: Any) -> None:
        self._half_way()
        started = context.get("bench_started")
        label = context.get("bench_label")
        if started is None or label is None:
            return
        with self._lock:
            self.round_trips.setdefault(label, []).append((time.perf_counter() - started) * 1000)


class InvocationTracker:
    """The stand-in's ``on_invocation`` callback: counts finished handler runs per route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.finished: Counter[str] = Counter()
        self.failures: list[Invocation] = []

    def __call__(self, invocation: Invocation) -> None:
        with self._lock:
            self.finished[invocation.route_key] += 1
            if invocation.outcome != "ok":
                self.failures.append(invocation)

    def count(self, route_key: str = "$default") -> int:
        with self._lock:
            return self.finished[route_key]

    async def wait_for(self, count: int, route_key: str = "$default", timeout_s: float = 30.0) -> bool:
        """Until ``count`` invocations of ``route_key`` have finished (a turn's last writes happen
        after its ``last`` frame)."""
        deadline = time.monotonic() + timeout_s
        while self.count(route_key) < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.002)
        return True
