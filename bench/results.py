"""The figures of one run: one series per operation or ceiling, one row per concurrency."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load import LoadResult
from bench.processes import Monitor
from bench.stats import summarize

OK = "ok"
NOT_AVAILABLE = "not available yet"
FAILED = "failed"


@dataclass
class Series:
    name: str
    kind: str  # "operation" | "ceiling" | "scaling" | "recheck"
    unit: str = "calls/s"  # of `throughput`
    ceiling: str = ""  # the series this one is judged against
    status: str = OK
    note: str = ""
    workers: int = 1
    levels: list[dict[str, Any]] = field(default_factory=list)

    def at(self, concurrency: int) -> dict[str, Any] | None:
        """The row at that concurrency; a single-row series (a batch figure) fits any."""
        if len(self.levels) == 1 and self.levels[0].get("concurrency") is None:
            return self.levels[0]
        return next((r for r in self.levels if r["concurrency"] == concurrency), None)

    def best(self) -> dict[str, Any] | None:
        return max(self.levels, key=lambda r: r["throughput"], default=None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def level_row(
    concurrency: int | None,
    result: LoadResult,
    monitor: Monitor | None,
    window: float,
) -> dict[str, Any]:
    """One measurement as a row. Throughput is over the window actually used: from its start
    to the last recorded completion (long calls drain after the window closes)."""
    seconds = result.finished - result.started if result.finished > result.started else window
    summary = summarize(result.latencies, sum(result.errors.values()), seconds)
    row: dict[str, Any] = {
        "concurrency": concurrency,
        **summary.as_dict(),  # its `throughput` is calls/s; ours is units/s (rows for batches)
        "calls_per_s": summary.throughput,
        "throughput": result.units / seconds if seconds > 0 else math.nan,
        "error_codes": result.errors,
        "error_sample": result.error_sample,
        "client_cpu": result.cpu_seconds / seconds if seconds > 0 else math.nan,
        "exhausted": result.exhausted,
        **result.extra,
    }
    if monitor is not None:
        row.update(
            server_cpu=monitor.server_cores,
            # Per replica: shows how SO_REUSEPORT spread the client's connections.
            server_cpu_split=[round(c, 2) for c in monitor.cores_by_pid.values()],
            db_cpu=monitor.db_cores,
            worker_cpu=monitor.worker_cores,
            peak_rss_mb=monitor.peak_rss_mb,
        )
    return row


def value_of(row: dict[str, Any] | None, key: str) -> float | None:
    """A figure of a row that may be missing."""
    return None if row is None else row.get(key)


def scalar_row(throughput: float, **extra: Any) -> dict[str, Any]:
    """A batch figure (rows/s, events/s) with no latency distribution."""
    return {"concurrency": None, "throughput": throughput, **extra}


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)
    scaling: list[dict[str, Any]] = field(default_factory=list)
    # Paired re-checks of the throughput targets: {target, operation, ceiling, rounds, median}
    rechecks: list[dict[str, Any]] = field(default_factory=list)

    def add(self, series: Series) -> Series:
        self.series[series.name] = series
        return series

    def operations(self) -> list[Series]:
        return [s for s in self.series.values() if s.kind == "operation"]

    def ceilings(self) -> list[Series]:
        return [s for s in self.series.values() if s.kind == "ceiling"]
