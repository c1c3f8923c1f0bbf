"""Exactly once under takeover, through real worker processes on a database of their own: under
issue and activation load, the lock session of the worker that runs the views is terminated
(pg_terminate_backend) again and again while its runner may still be writing a batch; a second
worker takes over, 20 times. Each batch is fenced on the position it was read from, so the views
(count tables included) equal a rebuild from position 0 after the last trial: a batch applied
twice in any trial would have stayed in the counts, which only ever add."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from projections.registry import NAMES, view_class
from projections.workers.runner import close_runner, start_views
from tests.helpers import unique
from tests.support import FakeClock
from tests.views_support import (
    all_live_at_head,
    differences,
    head,
    live_generations,
    position,
    settings_for,
    start_worker,
    stop,
    wait_until,
)

TRIALS = 20  # terminations, each mid-batch under load (~15 s in all on a quiet 2-core machine)


class Load(threading.Thread):
    """Issues keys and activates them, one account per key, until stopped."""

    def __init__(self, service: Service) -> None:
        super().__init__(daemon=True)
        self.service = service
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                batch = self.service.app.issue_keys(
                    IssueKeys("acme", Product.INTEGRATIONS, Tier.SCALE, 2, 1, 50, unique("req"))
                )
                for key in batch.keys[:25]:
                    self.service.app.activate(key.key_id, unique("acct"))
        except BaseException as error:
            self.errors.append(error)


def lock_holders(sql: psycopg.Connection) -> list[int]:
    """The sessions holding a worker's advisory lock in this database."""
    rows = sql.execute(
        "SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
        " AND l.pid <> pg_backend_pid()"
    ).fetchall()
    return [int(r[0]) for r in rows]


def flowing(sql: psycopg.Connection, beyond: int) -> Callable[[], bool]:
    return lambda: head(sql) > beyond


@pytest.mark.slow
def test_terminating_the_workers_lock_session_mid_batch_under_load_leaves_views_equal_a_rebuild(
    own_database: str, tmp_path: Path
) -> None:
    settings = settings_for(own_database, tmp_path / "var")
    service = bootstrap.build(settings, FakeClock())
    workers = [start_worker(own_database, tmp_path / f"worker{i}.log") for i in range(2)]
    load = Load(service)
    try:
        with psycopg.connect(own_database, autocommit=True) as sql:
            wait_until(lambda: len(live_generations(sql)) == len(NAMES), "views created")
            load.start()
            for _ in range(TRIALS):
                wait_until(lambda: bool(lock_holders(sql)), "a worker runs the views")
                wait_until(flowing(sql, head(sql) + 20), "load flowing")
                for pid in lock_holders(sql):
                    sql.execute("SELECT pg_terminate_backend(%s)", (pid,))
            load.stopping.set()
            load.join(60)
            assert load.errors == []
            wait_until(lambda: all_live_at_head(sql), "views caught up")
            live = live_generations(sql)
            target = head(sql)
            rebuilt = {name: live[name] + 1 for name in NAMES}
            for name, generation in rebuilt.items():
                view_class(name).at(service.datastore, generation).create_table()
            runner = start_views(settings, rebuilt)
            try:
                wait_until(
                    lambda: all(position(sql, n, g) >= target for n, g in rebuilt.items()),
                    "rebuilt",
                )
            finally:
                close_runner(runner)
            for name in NAMES:
                assert differences(sql, name, live[name], rebuilt[name]) == {}, name
    finally:
        load.stopping.set()
        for worker in workers:
            stop(worker)
        service.close()
