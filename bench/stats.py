"""Latency and throughput summaries. Pure functions: no I/O, no clock."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) of already sorted values, linearly interpolated.

    NaN for no values, so an empty measurement is visibly empty rather than zero.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if n == 1:
        return float(sorted_values[0])
    rank = (n - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    fraction = rank - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction)


@dataclass(frozen=True)
class Summary:
    calls: int
    errors: int
    seconds: float
    throughput: float  # successful calls per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(latencies: Sequence[float], errors: int, seconds: float) -> Summary:
    """Summarise successful-call latencies (seconds) over a measurement window (seconds)."""
    ordered = sorted(latencies)
    calls = len(ordered)
    throughput = calls / seconds if seconds > 0 else math.nan
    mean = sum(ordered) / calls if calls else math.nan
    return Summary(
        calls=calls,
        errors=errors,
        seconds=seconds,
        throughput=throughput,
        p50_ms=percentile(ordered, 50) * 1e3,
        p95_ms=percentile(ordered, 95) * 1e3,
        p99_ms=percentile(ordered, 99) * 1e3,
        mean_ms=mean * 1e3,
    )


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is missing, NaN or the reference is zero."""
    if value is None or reference is None:
        return None
    if math.isnan(value) or math.isnan(reference) or reference == 0:
        return None
    return value / reference
