"""The projection runner against real Postgres, on a database of its own: batches, and the
tracking row as the guarantee of exactly once (the workers' advisory lock only saves work)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from license_svc import bootstrap
from license_svc.application import IssueKeys
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from projections.base import CHANNEL
from projections.runner import close_runner, start_runner
from tests.helpers import unique
from tests.support import FakeClock
from tests.views_support import fresh_database, head, row_count, settings_for, wait_until


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    with fresh_database(database_url) as url:
        built = bootstrap.build(settings_for(url, tmp_path, LICENSE_SVC_POOL_SIZE="2"), FakeClock())
        try:
            yield built
        finally:
            built.close()


def issue(service: Service, count: int) -> None:
    service.app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.SCALE, 1, 12, count, unique("req"))
    )


def test_a_view_catching_up_writes_many_events_per_transaction(service: Service) -> None:
    for _ in range(4):
        issue(service, 1_000)
    heard: list[str] = []
    with psycopg.connect(service.settings.database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        runner = start_runner(service.settings, "catalog", 1)
        try:
            wait_until(lambda: service.views.catalog.position() == 4_000, "caught up")
        finally:
            close_runner(runner)
        heard = [n.payload for n in conn.notifies(timeout=0.5) if n.payload.startswith("catalog")]
    assert 1 <= len(heard) <= 20  # 4,000 events; the subscription fetches 500 at a time


def test_two_runners_of_one_view_never_both_commit_an_event(service: Service) -> None:
    for _ in range(3):
        issue(service, 500)
    start = threading.Barrier(2)
    runners = []

    def run() -> None:
        start.wait()
        runners.append(start_runner(service.settings, "catalog", 1))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        issue(service, 500)
        with psycopg.connect(service.settings.database_url, autocommit=True) as sql:
            target = head(sql)
            wait_until(lambda: service.views.catalog.position() == target, "caught up")
            assert row_count(sql, "catalog_g1_keys") == 2_000
    finally:
        errors = []
        for runner in runners:
            try:
                close_runner(runner)
            except Exception as error:  # the one that lost a race stops with its error
                errors.append(error)
    assert all("tracking" in str(e).lower() or "duplicate" in str(e).lower() for e in errors)
