"""The StreamEvents stage: what streams cost the server (`python -m bench.run --only StreamEvents`,
or alone: `python -m bench.streams [--seconds S] [--followers N]`).

On a fresh database and a real `license-svc serve` process (and a projection worker):

1. Live latency, event appended → received by a follower (now − the event's `recorded_at`, on
   one machine, so one clock), p50/p99, with 1 follower and with N followers; a writer appends
   one IssueKeys of 1 key about every 20 ms meanwhile.
2. GetSeatAllowance throughput (closed loop, concurrency 32, in a process of its own) with N
   followers attached at the live tail, as a ratio to the same load without them; paired
   rounds (without, with) × 5, median of the ratios (the machine's 2 cores swing ±20 %).
3. A follower that stops reading while 100,000 events are appended: the server's peak RSS, and
   how the stream ended (RESOURCE_EXHAUSTED with a resume position once its write stalled for
   LICENSE_SVC_STREAM_STALL_SECONDS, 10 s here).
4. What a point-in-time read costs (GetSubscriptionSummary with as_of, one account with a few
   keys), with about 10^4 and then 10^5 events in the store.

Followers run in 4 client processes of their own (grpc.aio), so the load generator and the
followers do not share a GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import psutil
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp

from bench import database, projections
from bench.processes import ProcessGroup, free_port, process_pool, service_env, start_group
from bench.scenarios import auth, issue_request
from bench.seed import Seeder
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc

log = logging.getLogger("bench")
RESULTS = Path(__file__).resolve().parent / "results"
FOLLOWER_PROCESSES = 4
STALL_SECONDS = 10


# -- client processes -----------------------------------------------------------------------


def _follow(address: str, after: int, streams: int, seconds: float, ready_file: str) -> list[float]:
    """`streams` followers from `after` (the head) for `seconds`: each event's latency in ms."""
    return asyncio.run(_follow_async(address, after, streams, seconds, ready_file))


async def _follow_async(
    address: str, after: int, streams: int, seconds: float, ready_file: str
) -> list[float]:
    latencies: list[float] = []
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, streams // 25))]
    caught_up = 0

    async def one(index: int) -> None:
        nonlocal caught_up
        stub = pb_grpc.AuditServiceStub(channels[index % len(channels)])
        call = stub.StreamEvents(
            pb.StreamEventsRequest(after_position=after, follow=True), metadata=auth("auditor")
        )
        try:
            async for item in call:
                kind = item.WhichOneof("item")
                if kind == "caught_up":
                    caught_up += 1
                    if caught_up == streams:
                        Path(ready_file).write_text("ready")
                elif kind == "event":
                    sent = item.event.recorded_at.ToDatetime(tzinfo=UTC)
                    latencies.append((datetime.now(UTC) - sent).total_seconds() * 1000)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                log.warning("follower ended: %s", error.code())

    tasks = [asyncio.create_task(one(i)) for i in range(streams)]
    stop, deadline = Path(ready_file).with_name("stop"), time.monotonic() + seconds
    while not stop.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close(None)
    return latencies


def _unary_load(address: str, accounts: list[str], seconds: float, concurrency: int) -> float:
    return asyncio.run(_unary_load_async(address, accounts, seconds, concurrency))


async def _unary_load_async(
    address: str, accounts: list[str], seconds: float, concurrency: int
) -> float:
    channels = [grpc.aio.insecure_channel(address) for _ in range(8)]
    stubs = [pb_grpc.EntitlementServiceStub(c) for c in channels]
    calls = 0
    warm_until = time.monotonic() + 0.5
    end = warm_until + seconds

    async def loop(index: int) -> None:
        nonlocal calls
        stub = stubs[index % len(stubs)]
        i = index
        while time.monotonic() < end:
            request = pb.GetSeatAllowanceRequest(
                account_id=accounts[i % len(accounts)], product=pb.PRODUCT_INTEGRATIONS
            )
            await stub.GetSeatAllowance(request, metadata=auth("integrations"), timeout=10)
            if time.monotonic() >= warm_until:
                calls += 1
            i += concurrency

    await asyncio.gather(*(loop(i) for i in range(concurrency)))
    for channel in channels:
        await channel.close(None)
    return calls / seconds


# -- the stage ------------------------------------------------------------------------------


def store_head(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM licensing_events")
        found = row.fetchone()
    return int(found[0]) if found else 0


@contextmanager
def followers(
    pool: ProcessPoolExecutor, url: str, address: str, count: int, seconds: float
) -> Iterator[list[Any]]:
    """`count` followers in FOLLOWER_PROCESSES processes, all caught up before the body runs,
    all gone when it has run (or after `seconds` at most)."""
    after = store_head(url)
    folder = Path(tempfile.mkdtemp(prefix="bench-followers-"))
    shares = [count // FOLLOWER_PROCESSES + (i < count % FOLLOWER_PROCESSES) for i in range(4)]
    shares = [s for s in shares if s]
    futures = [
        pool.submit(_follow, address, after, share, seconds, str(folder / f"ready-{i}"))
        for i, share in enumerate(shares)
    ]
    deadline = time.monotonic() + 60
    while len(list(folder.glob("ready-*"))) < len(shares) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield futures
    finally:
        time.sleep(1.0)  # the last events reach the followers
        (folder / "stop").write_text("stop")
        for future in futures:
            future.result()


def _writer(address: str, seconds: float, stop: threading.Event) -> int:
    channel = grpc.insecure_channel(address)
    keys = pb_grpc.KeyServiceStub(channel)
    written, end = 0, time.monotonic() + seconds
    while time.monotonic() < end and not stop.is_set():
        keys.IssueKeys(issue_request(1), metadata=auth("reseller"), timeout=30)
        written += 1
        time.sleep(0.02)
    channel.close()
    return written


def latency(
    pool: ProcessPoolExecutor, url: str, address: str, count: int, seconds: float
) -> dict[str, Any]:
    with followers(pool, url, address, count, 120) as futures:
        written = _writer(address, seconds, threading.Event())
    samples = sorted(x for f in futures for x in f.result())
    if not samples:
        return {"followers": count, "events_written": written, "received": 0}
    return {
        "followers": count,
        "events_written": written,
        "received": len(samples),
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
    }


def unary_ratio(
    pool: ProcessPoolExecutor,
    url: str,
    address: str,
    accounts: list[str],
    count: int,
    seconds: float,
) -> dict[str, Any]:
    rounds = []
    for _ in range(5):
        without = pool.submit(_unary_load, address, accounts, seconds, 32).result()
        with followers(pool, url, address, count, 120):
            with_them = pool.submit(_unary_load, address, accounts, seconds, 32).result()
        rounds.append((without, with_them, with_them / without))
        log.info(
            "GetSeatAllowance c=32: %.0f/s alone, %.0f/s with %d followers",
            without,
            with_them,
            count,
        )
    return {
        "followers": count,
        "rounds": [
            {"without": round(a), "with": round(b), "ratio": round(r, 3)} for a, b, r in rounds
        ],
        "ratio_median": round(statistics.median(r for _, _, r in rounds), 3),
        "target": ">= 0.9",
    }


def stalled_follower(address: str, seeder: Seeder, pids: list[int], events: int) -> dict[str, Any]:
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.AuditServiceStub(channel)
    call = stub.StreamEvents(
        pb.StreamEventsRequest(after_position=seeder.last_position, follow=True),
        metadata=auth("auditor"),
    )
    next(call)  # the stream is open; from now on nobody reads it
    server = psutil.Process(pids[0])
    before = server.memory_info().rss
    peak = before
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, server.memory_info().rss)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    seeder.issue(events)
    appended_in = time.monotonic() - started
    time.sleep(STALL_SECONDS + 2)  # let the stall timer end the stream
    done.set()
    watcher.join()
    ended, resume_after, last = "still open", "", 0
    try:
        for item in call:  # read what was buffered, then the status
            if item.WhichOneof("item") == "event":
                last = item.event.position
        ended = "OK"
    except grpc.RpcError as error:
        ended = error.code().name
        resume_after = error.details() or ""
    channel.close()
    return {
        "events_appended": events,
        "appended_in_s": round(appended_in, 1),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_peak_mb": round(peak / 2**20, 1),
        "target": "<= 250 MB",
        "stream_ended": ended,
        "message": resume_after,
        "last_event_received": last,
    }


def as_of_cost(url: str, address: str, account: str, calls: int = 30) -> dict[str, Any]:
    """Sequential GetSubscriptionSummary(as_of=now) of one seeded account: ms per call."""
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.EntitlementServiceStub(channel)
    samples = []
    for _ in range(calls):
        when = Timestamp()
        when.GetCurrentTime()
        request = pb.GetSubscriptionSummaryRequest(
            account_id=account, product=pb.PRODUCT_INTEGRATIONS, as_of=when
        )
        started = time.perf_counter()
        stub.GetSubscriptionSummary(request, metadata=auth("auditor"), timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
    channel.close()
    samples.sort()
    return {
        "store_events": store_head(url),
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
    }


def run(url: str, logs: Path, seconds: float, count: int) -> dict[str, Any]:
    address = f"127.0.0.1:{free_port()}"
    env = {
        **service_env(url, address, 1),
        "LICENSE_SVC_STREAM_STALL_SECONDS": str(STALL_SECONDS),
    }
    argv = [sys.executable, "-m", "license_svc.entrypoints.cli.main", "serve"]
    worker = projections.start_worker(url, logs)
    figures: dict[str, Any] = {}
    try:
        service: ProcessGroup
        with (
            start_group("license-svc", argv, env, address, 1, logs) as service,
            process_pool(FOLLOWER_PROCESSES + 1) as pool,
        ):
            seeder = Seeder(address)
            accounts = seeder.reads(activated=400, unredeemed=0).accounts
            seeder.catch_up()
            figures["latency_c1"] = latency(pool, url, address, 1, seconds)
            figures[f"latency_c{count}"] = latency(pool, url, address, count, seconds)
            figures["unary_ratio"] = unary_ratio(pool, url, address, accounts, count, seconds)
            seeder.issue(max(0, 10_000 - store_head(url)))
            figures["as_of_1e4"] = as_of_cost(url, address, accounts[0])
            figures["stalled_follower"] = stalled_follower(address, seeder, service.pids, 100_000)
            figures["as_of_1e5"] = as_of_cost(url, address, accounts[0])
            seeder.close()
    finally:
        projections.stop_worker(worker)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.streams", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--followers", type=int, default=100)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logs = Path(tempfile.mkdtemp(prefix="license-svc-bench-streams-"))
    with database.fresh_database(database.server_url()) as url:
        figures = run(url, logs, args.seconds, args.followers)
    text = json.dumps(figures, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "streams-latest.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
