"""Time for one route invocation: a clock the tests can drive, and the deadline a handler keeps.

API Gateway waits 29 s for an integration and writes an error frame into the call's socket if the
Lambda is later, so every handler works to a ``Budget`` (entry points start it; the turn engine
keeps it)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Budget:
    """The monotonic time by which a route handler must have returned."""

    deadline: float

    @classmethod
    def start(cls, clock: Clock, seconds: float, remaining_ms: int | None = None) -> Budget:
        limit = seconds
        if remaining_ms is not None:
            limit = min(limit, remaining_ms / 1000.0 - 1.5)  # keep time to log and return
        return cls(deadline=clock.monotonic() + max(limit, 0.5))
