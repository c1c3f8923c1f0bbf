"""Running measurements: closed-loop load from the client processes, with the server watched."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench.inprocess import RepositorySpec, repository_ceiling
from bench.load import LoadSpec, merge, run_load
from bench.plan import Plan
from bench.processes import Monitor
from bench.results import FAILED, Series, level_row

log = logging.getLogger("bench")
ItemsFor = Callable[[int], list[Any]]
MAX_FRESH = 60_000  # keys issued for one measurement at most


def _split(items: list[Any], parts: int, once: bool) -> list[list[Any]]:
    if once:
        return [items[i::parts] for i in range(parts)]
    # Reusable items: every client cycles through all of them, from its own offset.
    step = max(1, len(items) // parts)
    return [items[i * step :] + items[: i * step] for i in range(parts)]


def fresh_budget(series: Series, plan: Plan, concurrency: int, rate: float = 0.0) -> int:
    """How many fresh items one measurement may use: the best rate so far, with headroom."""
    seen = (r["calls"] / r["seconds"] for r in series.levels if r["seconds"])
    rate = max(rate, max(seen, default=300))
    need = rate * 1.6 * (plan.duration + plan.warmup) + 8 * concurrency + 50
    return int(min(need, MAX_FRESH))


class Runner:
    def __init__(self, plan: Plan, executor: ProcessPoolExecutor) -> None:
        self.plan = plan
        self.executor = executor
        self.worker_pids: list[int] = []  # the projection worker, watched beside the server

    def closed_loop(
        self,
        series: Series,
        scenario: str,
        address: str,
        pids: Sequence[int],
        items_for: ItemsFor,
        once: bool,
        levels: Sequence[int],
        warmup: float | None = None,
    ) -> Series:
        plan = self.plan
        warm = plan.warmup if warmup is None else warmup
        for concurrency in levels:
            items = items_for(concurrency)
            clients = max(1, min(plan.clients, concurrency))
            shares = [concurrency // clients + (i < concurrency % clients) for i in range(clients)]
            start_at = time.time() + 0.3
            specs = [
                LoadSpec(
                    scenario,
                    address,
                    share,
                    plan.duration,
                    warm,
                    start_at,
                    part,
                    once,
                    plan.channels,
                )
                for share, part in zip(shares, _split(items, clients, once), strict=True)
            ]
            with Monitor(pids, self.worker_pids) as monitor:
                merged = merge(list(self.executor.map(run_load, specs)))
            row = level_row(concurrency, merged, monitor, plan.duration)
            series.levels.append(row)
            _log_level(series, concurrency, row)
            if row["calls"] == 0:
                series.status = FAILED
                series.note = f"no successful call at c={concurrency}: {row['error_sample']}"
                break
        return series

    def repository(
        self,
        series: Series,
        database_url: str,
        levels: Sequence[int],
        recorder: str = "stock",
        rate: float = 0.0,  # the rate to budget fresh keys for, if higher than seen so far
    ) -> Series:
        """Ceiling (e), in a client process: get + activate + save from N threads (through the
        library's recorder, or the service's: `inprocess._app`)."""
        plan = self.plan
        for concurrency in levels:
            keys = fresh_budget(series, plan, concurrency, rate)
            spec = RepositorySpec(
                database_url, concurrency, plan.duration, plan.warmup, keys, recorder
            )
            result = self.executor.submit(repository_ceiling, spec).result()
            row = level_row(concurrency, result, None, plan.duration)
            series.levels.append(row)
            _log_level(series, concurrency, row)
        return series


def _log_level(series: Series, concurrency: int, row: dict[str, Any]) -> None:
    log.info(
        "%-24s c=%-3d %9.1f %s  p50 %7.2f ms  p99 %7.2f ms  errors %s",
        series.name,
        concurrency,
        row["throughput"],
        series.unit,
        row["p50_ms"],
        row["p99_ms"],
        row.get("error_codes") or 0,
    )
