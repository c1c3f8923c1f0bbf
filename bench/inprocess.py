"""Ceilings (d)–(f), measured in a client process without gRPC in the way.

    (d) psycopg `executemany` and `COPY` of 10,000 rows shaped like stored events
    (e) the library's `repository.get` + `save` of one ActivationKey (an activation), from
        `concurrency` threads sharing one application, as the server's thread pool would
    (f) a raw read of the notification log (`select_notifications`, pages of 1,000)

Each function is a top-level, picklable entry point that returns plain data.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.load import LoadResult
from bench.processes import BENCH_PEPPER
from license_svc import config
from license_svc.domain.key import ActivationKey
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import LicensingApp

BULK_ROWS = 10_000
TOPIC = "license_svc.domain.key:ActivationKey.KeyIssued"
BULK_TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_bulk ("
    " originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text,"
    " state bytea, notification_id bigserial,"
    " PRIMARY KEY (originator_id, originator_version))"
)
BULK_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS bench_bulk_nid ON bench_bulk (notification_id)"
INSERT = (
    "INSERT INTO bench_bulk (originator_id, originator_version, topic, state)"
    " VALUES (%s, %s, %s, %s)"
)
COPY = "COPY bench_bulk (originator_id, originator_version, topic, state) FROM STDIN"
# Keys saved per `app.save` when seeding (e). The stock recorder sends a save as one pipelined
# INSERT; a message larger than the socket buffer hangs psycopg 3.3's pipeline for ever over a
# Unix socket (the embedded default). 200 KeyIssued events are a few tens of KiB.
SEED_BATCH = 200


def _app(database_url: str, recorder: str = "stock") -> LicensingApp:
    env = config.load(
        {
            **os.environ,
            "LICENSE_SVC_DATABASE_URL": database_url,
            "LICENSE_SVC_PEPPER": BENCH_PEPPER,
        },
        purpose="tool",  # an in-process app for the ceilings: it serves no calls, needs no tokens
    )
    # Ceilings measure the library as it ships: its own application recorder, not ours
    # (store.py's pipelined insert would otherwise raise the ceiling it is compared with).
    # `recorder`: "stock" (the ceilings), or the service's own with group commit "on" or "off"
    # (the append rows: what group commit buys over one transaction per save).
    chosen = {
        "stock": {
            "APPLICATION_RECORDER_TOPIC": "eventsourcing.postgres:PostgresApplicationRecorder"
        },
        "on": {"GROUP_COMMIT": "y"},
        "off": {"GROUP_COMMIT": "n"},
    }[recorder]
    return LicensingApp(env={**env.eventsourcing_env(), **chosen})


def _rows(state_bytes: int) -> list[tuple[Any, ...]]:
    state = b"x" * state_bytes
    return [(uuid.uuid4(), 1, TOPIC, state) for _ in range(BULK_ROWS)]


def bulk_ceiling(database_url: str, state_bytes: int, repeats: int = 3) -> dict[str, float]:
    """Best rows/s of `executemany` and of `COPY`, each one transaction of 10,000 rows."""
    best = {"executemany": 0.0, "copy": 0.0}
    with psycopg.connect(database_url) as conn:
        conn.execute(BULK_TABLE)
        conn.execute(BULK_INDEX)
        conn.commit()
        for _ in range(repeats):
            rows = _rows(state_bytes)
            began = time.perf_counter()
            with conn.cursor() as cur:
                cur.executemany(INSERT, rows)
            conn.commit()
            best["executemany"] = max(
                best["executemany"], BULK_ROWS / (time.perf_counter() - began)
            )
            rows = _rows(state_bytes)
            began = time.perf_counter()
            with conn.cursor() as cur, cur.copy(COPY) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            best["copy"] = max(best["copy"], BULK_ROWS / (time.perf_counter() - began))
        conn.execute("TRUNCATE bench_bulk")
        conn.commit()
    return best


@dataclass(frozen=True)
class RepositorySpec:
    database_url: str
    concurrency: int
    duration: float
    warmup: float
    keys: int  # fresh keys to create first (each activation uses one)
    recorder: str = "stock"  # see `_app`


def _issue(app: LicensingApp, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    for start in range(0, count, SEED_BATCH):
        app.save(
            *[
                ActivationKey.issue(
                    key_id,
                    product=Product.INTEGRATIONS,
                    tier=Tier.GROWTH,
                    seats=3,
                    period_months=12,
                    reseller_id="bench",
                    batch_id="bench-ceiling-e",
                    hint="INT-••••-••••-BNCH",
                )
                for key_id in ids[start : start + SEED_BATCH]
            ]
        )
    return ids


def repository_ceiling(spec: RepositorySpec) -> LoadResult:
    """Closed loop of get + activate + save from `concurrency` threads over one app."""
    app = _app(spec.database_url, spec.recorder)
    try:
        ids = _issue(app, spec.keys)
        lock = threading.Lock()
        result = LoadResult()
        window_start = time.time() + spec.warmup
        window_end = window_start + spec.duration

        def worker() -> None:
            while True:
                with lock:
                    if not ids:
                        result.exhausted = True
                        return
                    key_id = ids.pop()
                began = time.time()
                if began >= window_end:
                    return
                key: ActivationKey = app.repository.get(key_id)  # type: ignore[assignment]
                key.activate(f"bench-e-{key_id.hex[:8]}", datetime.now(UTC))
                app.save(key)
                ended = time.time()
                if began >= window_start:
                    with lock:
                        result.latencies.append(ended - began)
                        result.units += 1
                        result.finished = max(result.finished, ended)

        cpu0 = time.process_time()
        threads = [threading.Thread(target=worker) for _ in range(spec.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.cpu_seconds = time.process_time() - cpu0
        result.started = window_start
        # Over the whole run (seeding's saves included): appends per transaction, each group's
        # time from its writer's start to its COMMIT's answer (pool checkout included), and each
        # transaction's round trip (BEGIN sent to COMMIT answered: the lock's wait and hold).
        group = getattr(app.recorder, "group_commit", None)
        if group is not None and group.groups:
            result.extra["appends_per_group"] = group.appends / group.groups
            result.extra["ms_per_group"] = 1000 * group.write_seconds / group.groups
        trips = getattr(app.recorder, "round_trips", None)
        if trips is not None and trips.count:
            result.extra["ms_per_round_trip"] = 1000 * trips.seconds / trips.count
        return result
    finally:
        app.close()


def notification_ceiling(database_url: str, page: int = 1_000) -> dict[str, float]:
    """Read the whole notification log from the start; events/s."""
    app = _app(database_url)
    try:
        read, start = 0, 1
        began = time.perf_counter()
        while True:
            notifications = app.recorder.select_notifications(start=start, limit=page)  # type: ignore[attr-defined]
            if not notifications:
                break
            read += len(notifications)
            start = notifications[-1].id + 1
        seconds = time.perf_counter() - began
        return {
            "events": read,
            "seconds": seconds,
            "events_per_s": read / seconds if seconds else 0,
        }
    finally:
        app.close()


def mean_state_bytes(database_url: str) -> int:
    """The mean size of a stored KeyIssued (so the bulk ceiling writes rows of that shape)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT avg(length(state)) FROM licensing_events WHERE originator_version = 1"
        ).fetchone()
    return int(row[0]) if row and row[0] else 200
