"""The projection runner against real Postgres, on a database of its own: batches, the
tracking row as the guarantee of exactly once (the workers' advisory lock only saves work), and
a subscription that delivers every committed event even when no notice announced it —
committed before its LISTEN was in place, or written without a NOTIFY (`follow.py`)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from projections.base import CHANNEL
from projections.workers.follow import PacedSubscription
from projections.workers.runner import close_runner, start_runner
from tests.helpers import unique
from tests.support import FakeClock
from tests.views_support import fresh_database, head, row_count, settings_for, wait_until

DELIVERY_DEADLINE = 20.0  # only bounds a failing test: a lost event never arrives


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


def delivered(subscription: PacedSubscription, count: int) -> list[int]:
    """The positions of the first `count` events the subscription hands out (fewer if they do
    not come before the deadline); stops it."""
    got: list[int] = []

    def consume() -> None:
        for notification in subscription:
            got.append(notification.id)
            if len(got) == count:
                return

    with subscription:
        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        consumer.join(DELIVERY_DEADLINE)
        subscription.stop()
    return got


def test_an_event_committed_before_the_listen_is_in_place_is_delivered(service: Service) -> None:
    issue(service, 1)
    first_read_done = threading.Event()

    class ListensLate(PacedSubscription):
        recheck_seconds = 3_600.0  # only the read after LISTEN can find the event

        def _pull(self) -> None:
            super()._pull()
            if not first_read_done.is_set():
                issue(service, 1)  # after the first read, with nobody listening yet
                first_read_done.set()

        def _listen(self) -> None:
            first_read_done.wait(DELIVERY_DEADLINE)
            super()._listen()

    subscription = ListensLate(recorder=service.app.recorder, gt=0)  # type: ignore[arg-type]
    assert delivered(subscription, 2) == [1, 2]


def test_an_event_whose_notice_was_lost_is_delivered_by_the_recheck(service: Service) -> None:
    issue(service, 1)

    class RechecksOften(PacedSubscription):
        recheck_seconds = 0.05

    subscription = RechecksOften(recorder=service.app.recorder, gt=0)  # type: ignore[arg-type]
    with psycopg.connect(service.settings.database_url, autocommit=True) as sql:
        sql.execute(  # an append that NOTIFYs nobody
            "INSERT INTO licensing_events (originator_id, originator_version, topic, state)"
            " VALUES (%s, 1, 'test:Silent', '\\x00')",
            (uuid.uuid4(),),
        )
        last = head(sql)
    assert delivered(subscription, 2) == [1, last]
