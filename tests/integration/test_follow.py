"""The worker's subscription (`projections/follow.py`) against real Postgres: it delivers every
committed event even when no notice announced it — committed before its LISTEN was in place, or
written without a NOTIFY — on a database of its own."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from license_svc import bootstrap
from license_svc.application import IssueKeys
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from projections.follow import PacedSubscription
from tests.helpers import unique
from tests.support import FakeClock
from tests.views_support import fresh_database, head, settings_for

DELIVERY_DEADLINE = 20.0  # only bounds a failing test: a lost event never arrives


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    with fresh_database(database_url) as url:
        built = bootstrap.build(settings_for(url, tmp_path, LICENSE_SVC_POOL_SIZE="2"), FakeClock())
        try:
            yield built
        finally:
            built.close()


def issue_one(service: Service) -> None:
    service.app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.STARTER, 1, 12, 1, unique("req"))
    )


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
    issue_one(service)
    first_read_done = threading.Event()

    class ListensLate(PacedSubscription):
        recheck_seconds = 3_600.0  # only the read after LISTEN can find the event

        def _pull(self) -> None:
            super()._pull()
            if not first_read_done.is_set():
                issue_one(service)  # after the first read, with nobody listening yet
                first_read_done.set()

        def _listen(self) -> None:
            first_read_done.wait(DELIVERY_DEADLINE)
            super()._listen()

    subscription = ListensLate(recorder=service.app.recorder, gt=0)  # type: ignore[arg-type]
    assert delivered(subscription, 2) == [1, 2]


def test_an_event_whose_notice_was_lost_is_delivered_by_the_recheck(service: Service) -> None:
    issue_one(service)

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
