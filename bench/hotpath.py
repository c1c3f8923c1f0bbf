"""The hot path's stages: the account cache, WatchSeatAllowance fan-out and idle streams, and the
per-call CPU that the capacity model (docs/capacity.md) is computed from.

- `CacheReads`: GetSeatAllowance on a server whose cache is as good as off (one entry, so every
  call misses and still pays the bookkeeping: "cold") and on one with a cache larger than the
  accounts read (the warm-up fills it: "warm"), against ceilings (a) and (b) of the same run.
- `WatchFanout`: 1, 100 and 1,000 watchers of one account; each committed activation (the
  ActivateKey answer received) to its update received by every watcher, p50/p99.
- `IdleWatchers`: the server's RSS with 1,000 and 10,000 open, idle watches (distinct accounts).
- `Capacity`: server and PostgreSQL CPU µs per call of every operation measured in this run,
  and the capacity table derived from them.

The watch stages run a server of their own (LICENSE_SVC_MAX_STREAMS raised for them) and their
own watcher processes.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import psutil
import psycopg

from bench.chaos_parts import head, wait_views_at
from bench.measure import Runner
from bench.processes import ProcessGroup, free_port, process_pool, service_env, start_group
from bench.results import OK, Results, Series, scalar_row
from bench.scenarios import Stubs, issue_request
from bench.seed import Seeder, activate
from bench.stats import percentile
from bench.watchers import WatchResult, WatchSpec, run_watchers

log = logging.getLogger("bench")
STAGES = ("CacheReads", "WatchFanout", "IdleWatchers")
FANOUT = (1, 100, 1_000)
IDLE = (1_000, 10_000)
IDLE_QUICK = IDLE[:1]  # opening 10,000 watchers takes minutes on 2 loaded cores
UPDATES = 10  # activations per fan-out level
UPDATE_GAP = 0.25  # s between them: each is its own update, never two in one message
WATCHER_PROCESSES = 2
CAPACITY_C = 32
SEATS = issue_request().seats  # each activation adds this many seats


def start_tuned(url: str, workers: int, logs: Path, name: str, **env: str) -> ProcessGroup:
    """`license-svc serve` replicas with some settings of their own."""
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "license_svc.entrypoints.cli.main", "serve"]
    full = {**service_env(url, address, workers), **env}
    return start_group(name, argv, full, address, workers, logs)


def _cpu(group: ProcessGroup) -> float:
    """CPU seconds the group's processes used so far (the activations' share included)."""
    total = 0.0
    for pid in group.pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


# -- the cache --------------------------------------------------------------------------------


def cache_reads(
    runner: Runner, results: Results, url: str, seeder: Seeder, workers: int, logs: Path
) -> None:
    seeds = seeder.reads(runner.plan.seed_activated, runner.plan.seed_unredeemed)
    seeder.catch_up()
    accounts = seeds.accounts
    for label, entries in (("cold", "1"), ("warm", str(max(10_000, 4 * len(accounts))))):
        name = f"GetSeatAllowance cache {label}"
        series = results.add(Series(name, "operation", ceiling="b_select", workers=workers))
        with start_tuned(
            url, workers, logs, f"cache-{label}", LICENSE_SVC_CACHE_ENTRIES=entries
        ) as s:
            runner.closed_loop(
                series,
                "GetSeatAllowance",
                s.address,
                s.pids,
                lambda _: accounts,
                False,
                runner.plan.levels,
            )


# -- watches ----------------------------------------------------------------------------------


def _watchers(
    pool: ProcessPoolExecutor, address: str, accounts: list[str], updates: int, folder: Path
) -> tuple[list[Any], list[Path], Path]:
    parts = [accounts[i::WATCHER_PROCESSES] for i in range(WATCHER_PROCESSES)]
    hold = folder / f"hold-{uuid.uuid4().hex}"
    readies = [folder / f"ready-{uuid.uuid4().hex}" for _ in parts]
    futures = [
        pool.submit(
            run_watchers,
            WatchSpec(address, part, updates, SEATS, str(ready), str(hold), timeout=1800),
        )
        for part, ready in zip(parts, readies, strict=True)
        if part
    ]
    return futures, readies[: len(futures)], hold


def _wait_ready(readies: list[Path], futures: list[Any], timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in readies):
        for future in futures:
            if future.done():
                future.result()  # raises what the watcher process raised
        if time.monotonic() > deadline:
            raise TimeoutError("the watchers did not all get their first message")
        time.sleep(0.05)


def watch_fanout(results: Results, url: str, seeder: Seeder, workers: int, logs: Path) -> None:
    series = results.add(Series("WatchSeatAllowance fan-out", "operation", "updates/s"))
    folder = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    with (
        start_tuned(
            url,
            workers,
            logs,
            "watch",
            LICENSE_SVC_MAX_STREAMS="20000",
            LICENSE_SVC_STREAM_SHARE_PERCENT="100",
        ) as server,
        process_pool(WATCHER_PROCESSES) as pool,
        grpc.insecure_channel(server.address) as channel,
    ):
        stubs = Stubs(channel)
        for watchers in FANOUT:
            account = f"bench-watch-{uuid.uuid4().hex[:10]}"
            codes = seeder.codes(UPDATES)
            futures, readies, _ = _watchers(
                pool, server.address, [account] * watchers, UPDATES, folder
            )
            _wait_ready(readies, futures)
            _views_at_head(url)
            cpu0 = _cpu(server)
            committed = []
            for code in codes:
                activate(stubs, code, account, timeout=30)
                committed.append(time.time())
                time.sleep(UPDATE_GAP)
            got: list[WatchResult] = [f.result() for f in futures]
            row = _fanout_row(watchers, committed, got)
            row["server_us_per_delivery"] = (_cpu(server) - cpu0) * 1e6 / max(1, row["calls"])
            series.levels.append(row)
            log.info(
                "%-24s n=%-5d p50 %7.2f ms  p99 %7.2f ms  all-received p99 %7.2f ms  missing %d"
                "  server %.0f µs CPU per delivery",
                series.name,
                watchers,
                row["p50_ms"],
                row["p99_ms"],
                row["all_p99_ms"],
                row["missing"],
                row["server_us_per_delivery"],
            )


def _views_at_head(url: str, timeout: float = 300) -> None:
    """Wait until every view has taken in the store's head: the worker's backlog from the
    stages before (or from seeding this level's codes) is not a fan-out delay."""
    with psycopg.connect(url, autocommit=True) as conn:
        wait_views_at(conn, head(conn), timeout)


def _fanout_row(watchers: int, committed: list[float], got: list[WatchResult]) -> dict[str, Any]:
    delays: list[float] = []
    last_by_update: list[float] = [0.0] * len(committed)
    missing = 0
    for result in got:
        for arrivals in result.arrivals:
            for k, at in enumerate(committed, start=1):
                seen = next((t for t, seats in arrivals if seats >= k * SEATS), None)
                if seen is None:
                    missing += 1
                    continue
                delays.append(seen - at)
                last_by_update[k - 1] = max(last_by_update[k - 1], seen - at)
    delays.sort()
    last_by_update.sort()
    return {
        "concurrency": watchers,  # watchers of the account
        "throughput": len(delays) / max(1e-9, (committed[-1] - committed[0]) + 1e-3),
        "calls": len(delays),
        "p50_ms": percentile(delays, 50) * 1e3,
        "p99_ms": percentile(delays, 99) * 1e3,
        "all_p50_ms": percentile(last_by_update, 50) * 1e3,
        "all_p99_ms": percentile(last_by_update, 99) * 1e3,
        "missing": missing,
        "watcher_failures": sum(r.failures for r in got),
        "error_sample": next((r.failure_sample for r in got if r.failure_sample), ""),
    }


def idle_watchers(
    results: Results, url: str, workers: int, logs: Path, quick: bool = False
) -> None:
    series = results.add(Series("WatchSeatAllowance idle", "operation", "MB"))
    folder = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    for watchers in IDLE_QUICK if quick else IDLE:
        with (
            start_tuned(
                url,
                1,
                logs,
                "idle",
                LICENSE_SVC_MAX_STREAMS="20000",
                LICENSE_SVC_STREAM_SHARE_PERCENT="100",
            ) as server,
            process_pool(WATCHER_PROCESSES) as pool,
        ):
            process = psutil.Process(server.pids[0])
            before = process.memory_info().rss
            accounts = [f"bench-idle-{i:06d}" for i in range(watchers)]
            began = time.monotonic()
            futures, readies, hold = _watchers(pool, server.address, accounts, 0, folder)
            _wait_ready(readies, futures)
            opened = time.monotonic() - began
            time.sleep(1.0)
            rss = process.memory_info().rss
            hold.touch()
            got = [f.result() for f in futures]
        row = scalar_row(
            rss / 2**20,
            concurrency=watchers,
            rss_before_mb=before / 2**20,
            kb_per_watcher=(rss - before) / 1024 / watchers,
            seconds_to_open=opened,
            watcher_failures=sum(r.failures for r in got),
            opened=sum(r.opened for r in got),
            error_sample=next((r.failure_sample for r in got if r.failure_sample), ""),
        )
        row["concurrency"] = watchers
        series.levels.append(row)
        log.info(
            "%-24s n=%-5d RSS %7.1f MB (%.1f before, %.1f KB per watcher, all open in %.1f s)",
            series.name,
            watchers,
            row["throughput"],
            row["rss_before_mb"],
            row["kb_per_watcher"],
            opened,
        )


# -- per-call CPU and the capacity table ------------------------------------------------------


def per_call_cpu(results: Results, concurrency: int = CAPACITY_C) -> list[dict[str, Any]]:
    """Server and PostgreSQL CPU µs per call of every operation at `concurrency`."""
    rows = []
    for series in results.series.values():
        if series.kind not in ("operation", "ceiling") or series.status != OK:
            continue
        row = series.at(concurrency)
        if not row or not row.get("throughput") or "server_cpu" not in row:
            continue
        calls = row["calls_per_s"] if series.unit != "calls/s" else row["throughput"]
        if not calls:
            continue
        rows.append(
            {
                "series": series.name,
                "calls_per_s": calls,
                "server_us": row["server_cpu"] / calls * 1e6,
                "db_us": row["db_cpu"] / calls * 1e6,
                "p99_ms": row["p99_ms"],
            }
        )
    return rows


def capacity(results: Results) -> list[dict[str, Any]]:
    """Replicas and PostgreSQL cores for the issue's loads, at 70 % utilisation of a core.

    A server replica is one Python process: the GIL lets it use about one core, so a replica is
    costed as one core; PostgreSQL scales over cores."""
    by_name = {r["series"]: r for r in per_call_cpu(results)}
    plans = [
        ("GetSeatAllowance cache warm", (10_000, 50_000, 200_000)),
        ("GetSeatAllowance cache cold", (10_000, 50_000, 200_000)),
        ("GetSeatAllowance", (10_000, 50_000, 200_000)),
        ("ActivateKey", (100, 1_000)),
    ]
    table = []
    for name, loads in plans:
        cost = by_name.get(name)
        if cost is None:
            continue
        for load in loads:
            table.append(
                {
                    "series": name,
                    "load_per_s": load,
                    "calls_per_s_per_core": 1e6 / cost["server_us"],
                    "replicas": math.ceil(load * cost["server_us"] / 1e6 / 0.7),
                    "postgres_cores": load * cost["db_us"] / 1e6 / 0.7,
                }
            )
    return table


def capacity_text(results: Results) -> str:
    lines = ["Per call (c=32): server CPU µs, PostgreSQL CPU µs (this run's cluster only)"]
    for r in per_call_cpu(results):
        lines.append(
            f"  {r['series']:<36} {r['calls_per_s']:>9.0f}/s  server {r['server_us']:>7.0f} µs"
            f"  postgres {r['db_us']:>6.0f} µs  p99 {r['p99_ms']:.1f} ms"
        )
    table = capacity(results)
    if table:
        lines.append("Capacity at 70 % of a core (replica = one process ≈ one core):")
        for r in table:
            lines.append(
                f"  {r['series']:<36} {r['load_per_s']:>8}/s  {r['calls_per_s_per_core']:>7.0f}"
                f"/s per core  replicas {r['replicas']:>4}"
                f"  postgres cores {r['postgres_cores']:.1f}"
            )
    return "\n".join(lines)
