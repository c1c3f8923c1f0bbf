"""The expiry sweeper against real Postgres: due keys come from the key catalog view, and
sweepers racing each other append exactly one SubscriptionExpired per key."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import psycopg
import pytest

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.keys.sweeper import Sweep, Sweeper
from projections.catalog import CatalogView
from tests.helpers import EVENTS_TABLE, stored_topics, unique
from tests.support import FakeClock
from tests.views_support import cli


def activated_keys(service: Service, count: int, months: int = 1) -> list[str]:
    """Issue and activate `count` keys; return their ids once the catalog shows them."""
    batch = service.app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.STARTER, 1, months, count, unique("req"))
    )
    last = 0
    for key in batch.keys:
        last = service.app.activate(key.key_id, unique("acct")).position
    service.views.read(CatalogView, last, 60, lambda view: (None, view.position()))
    return [str(k.key_id) for k in batch.keys]


def duplicate_expiries(sql: psycopg.Connection) -> list[tuple[object, int]]:
    return sql.execute(
        f"SELECT originator_id, count(*) FROM {EVENTS_TABLE}"
        " WHERE topic LIKE '%SubscriptionExpired' GROUP BY originator_id HAVING count(*) > 1"
    ).fetchall()


def test_two_racing_sweepers_append_exactly_one_subscription_expired_per_key(
    make_service: Callable[..., Service], clock: FakeClock, sql: psycopg.Connection
) -> None:
    first, second = make_service(clock), make_service(clock)
    bootstrap.start_projections(first)
    keys = activated_keys(first, 30)
    clock.advance(days=40)  # every period above has ended

    start = threading.Barrier(2)
    sweeps: list[Sweep] = []

    def sweep(service: Service) -> None:
        start.wait()
        sweeps.append(service.sweeper().sweep_once())

    threads = [threading.Thread(target=sweep, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(sweeps) == 2
    for key_id in keys:
        assert stored_topics(sql, key_id).count("SubscriptionExpired") == 1
    assert sum(sweep.expired for sweep in sweeps) >= len(keys)
    assert duplicate_expiries(sql) == []


def test_the_sweeper_leaves_running_periods_alone(
    make_service: Callable[..., Service], clock: FakeClock, sql: psycopg.Connection
) -> None:
    service = make_service(clock)
    bootstrap.start_projections(service)
    keys = activated_keys(service, 3, months=2)
    clock.advance(days=40)  # one month on: the two-month periods still run
    service.sweeper().sweep_once()
    for key_id in keys:
        assert stored_topics(sql, key_id) == ["KeyIssued", "KeyActivated"]


@pytest.mark.slow
def test_the_expire_command_sweeps_once_and_exits(database_url: str) -> None:
    done = cli(database_url, "expire", "--once", timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(r"expired \d+ of \d+ due keys", done.stdout)


def test_a_key_whose_expiry_fails_is_logged_and_skipped_and_the_others_expire(
    make_service: Callable[..., Service],
    clock: FakeClock,
    sql: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = make_service(clock)
    bootstrap.start_projections(service)
    keys = activated_keys(service, 4)
    clock.advance(days=40)
    broken = keys[1]

    class BrokenForOneKey:
        """The application, except that one key's expiry fails (an event that cannot decode)."""

        def expire(self, key_id: object) -> object:
            if str(key_id) == broken:
                raise ValueError("cannot decode this key's events")
            return service.app.expire(key_id)  # type: ignore[arg-type]

    sweeper = Sweeper(
        BrokenForOneKey(),  # type: ignore[arg-type]
        lambda: service.views.catalog,
        clock,
        batch=2,  # the broken key sits in the first page
    )
    with caplog.at_level("ERROR", logger="license_svc.keys.sweeper"):
        sweep = sweeper.sweep_once()

    assert sweep.failed >= 1
    assert f"skipping {broken}" in caplog.text
    for key_id in keys:
        expected = 0 if key_id == broken else 1
        assert stored_topics(sql, key_id).count("SubscriptionExpired") == expected
