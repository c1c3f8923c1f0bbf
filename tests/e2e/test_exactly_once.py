"""Exactly once, through real worker processes on a database of their own: killing a worker at
random moments, or running two at once, never applies an event twice nor skips one."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from projections.base import CHANNEL
from projections.changes import Notice
from projections.registry import NAMES
from tests.helpers import unique
from tests.support import FakeClock
from tests.views_support import (
    all_live_at_head,
    cli,
    differences,
    head,
    live_generations,
    position,
    settings_for,
    start_worker,
    stop,
    wait_until,
)

EVENTS = 5_000
ROUND = 250  # events per round: 100 issued, 75 activated, 50 revoked, 25 expired


@pytest.fixture
def writer(own_database: str, tmp_path: Path) -> Iterator[Service]:
    settings = settings_for(own_database, tmp_path / "var", LICENSE_SVC_POOL_SIZE="2")
    service = bootstrap.build(settings, clock=FakeClock())
    yield service
    service.close()


def append_round(service: Service, clock: FakeClock, appended: Callable[[int], None]) -> None:
    """250 events of every type; `appended(n)` is told of each append of n events."""
    app = service.app
    batch = app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.GROWTH, 2, 1, 100, unique("req"))
    )
    appended(100)
    keys = [k.key_id for k in batch.keys]
    for key_id in keys[:75]:
        app.activate(key_id, unique("acct"))
        appended(1)
    for key_id in keys[75:]:
        app.revoke(key_id, reason="unsold", revoked_by="reseller:acme", by_ops=False)
        appended(1)
    for key_id in keys[:25]:
        app.revoke(key_id, reason="refund", revoked_by="ops", by_ops=True)
        appended(1)
    clock.advance(days=40)
    for key_id in keys[25:50]:
        assert app.expire(key_id) is not None
        appended(1)


def rebuild_equals_live(database_url: str, sql: psycopg.Connection) -> None:
    """Rebuild every view from position 0 with the CLI; the rebuilt tables equal the old ones
    row for row, and each new generation's tracking position is the store's head."""
    before = live_generations(sql)
    done = cli(database_url, "projections", "rebuild", "all", "--keep-old")  # compared below
    assert done.returncode == 0, done.stderr
    assert "ev/s" in done.stderr and "ETA" in done.stderr
    after = live_generations(sql)
    for name in NAMES:
        assert after[name] == before[name] + 1
        assert differences(sql, name, before[name], after[name]) == {}
        assert position(sql, name, after[name]) == head(sql)


@pytest.mark.slow
def test_a_worker_killed_at_random_moments_applies_every_event_exactly_once(
    own_database: str, writer: Service, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    chances = random.Random(seed)
    kill_at = sorted(chances.sample(range(200, EVENTS - 200), 5))
    log = tmp_path / "worker.log"
    worker = [start_worker(own_database, log)]
    appended = 0

    def count_and_maybe_kill(events: int) -> None:
        nonlocal appended
        appended += events
        while kill_at and appended >= kill_at[0]:
            kill_at.pop(0)
            worker[0].send_signal(signal.SIGKILL)
            worker[0].wait()
            worker[0] = start_worker(own_database, log)

    clock = writer.clock
    assert isinstance(clock, FakeClock)
    try:
        for _ in range(EVENTS // ROUND):
            append_round(writer, clock, count_and_maybe_kill)
        assert not kill_at, f"seed {seed}: kills left"
        with psycopg.connect(own_database, autocommit=True) as sql:
            assert head(sql) == EVENTS
            wait_until(lambda: all_live_at_head(sql), "every view at the head")
            rebuild_equals_live(own_database, sql)
    finally:
        stop(worker[0])


def listen_for_batches(database_url: str, stop_listening: threading.Event) -> list[str]:
    """Every batch notice the workers send, in the order they were committed."""
    heard: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            ready.set()
            while not stop_listening.is_set():
                heard.extend(n.payload for n in conn.notifies(timeout=0.1))

    threading.Thread(target=listen, daemon=True).start()
    ready.wait(10)
    return heard


@pytest.mark.slow
def test_two_workers_started_at_once_never_apply_an_event_twice(
    own_database: str, writer: Service, tmp_path: Path
) -> None:
    stop_listening = threading.Event()
    heard = listen_for_batches(own_database, stop_listening)
    workers: list[subprocess.Popen[bytes]] = [
        start_worker(own_database, tmp_path / f"worker-{n}.log") for n in (1, 2)
    ]
    clock = writer.clock
    assert isinstance(clock, FakeClock)
    try:
        for _ in range(4):
            append_round(writer, clock, lambda _: None)
        with psycopg.connect(own_database, autocommit=True) as sql:
            wait_until(lambda: all_live_at_head(sql), "every view at the head")
            at_head = head(sql)
    finally:
        stop_listening.set()
        for worker in workers:
            stop(worker)

    for name in NAMES:
        batches = [Notice.decode(payload) for payload in heard if not payload.startswith("live:")]
        ranges = [(n.first, n.last) for n in batches if n.view == f"{name}_g1"]
        applied = [p for first, last in ranges for p in (first, last)]
        assert applied == sorted(applied), f"{name}: batches overlap or went backwards"
        assert all(b[0] > a[1] for a, b in pairwise(ranges)), name
        assert ranges[0][0] == 1 and ranges[-1][1] == at_head
