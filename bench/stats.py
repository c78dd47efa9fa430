"""Medians and percentiles of noisy timings (milliseconds)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (``q`` in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values_ms: Sequence[float]) -> dict[str, Any]:
    """n, median, p95, min, max (rounded to 0.1 ms)."""
    if not values_ms:
        return {"n": 0, "median_ms": None, "p95_ms": None, "min_ms": None, "max_ms": None}
    return {
        "n": len(values_ms),
        "median_ms": round(statistics.median(values_ms), 1),
        "p95_ms": round(percentile(values_ms, 95), 1),
        "min_ms": round(min(values_ms), 1),
        "max_ms": round(max(values_ms), 1),
    }


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
