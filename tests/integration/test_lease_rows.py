"""The allowance view's lease rows and change log are the same however its events are batched:
a lease granted and ended in one batch is written once, ended (`AllowanceView._write_leases`),
and must leave exactly the rows that a grant and an ending in batches of their own leave."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import Tracking

from license_svc.bootstrap import Service
from license_svc.domain.seats import SeatLease, ending
from license_svc.domain.tiers import Product
from projections.allowance import AllowanceView
from projections.base import APP_NAME, View
from projections.workers.viewset import ViewSet

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def lease_events() -> list[Any]:
    """Twelve leases: granted and released, granted and expired, granted only, in turn."""
    events: list[Any] = []
    for n in range(12):
        lease_id, account = uuid4(), f"acct-{n % 3}\x00"
        at = T0 + timedelta(seconds=n)
        granted = SeatLease.grant(
            lease_id,
            account_id=account,
            product=Product.INTEGRATIONS,
            connection_id=f"c{n}",
            holder="h",
            ttl_seconds=60,
            now=at,
        ).collect_events()
        events.extend(granted)
        if n % 3 != 2:
            end = at + timedelta(seconds=30)
            events.append(ending(lease_id, account, "integrations", end, released=n % 3 == 0))
    return events


@pytest.fixture
def views(service: Service) -> Iterator[list[View]]:
    made = [AllowanceView.at(service.datastore, random.randrange(10**6, 10**9)) for _ in "ab"]
    for view in made:
        view.create_table()
    yield made
    with service.datastore.get_connection() as conn:
        for view in made:
            for table in [*view.table_names(), view.tracking_table_name]:
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def rows(service: Service, view: View, suffix: str, order: str) -> list[tuple[Any, ...]]:
    with service.datastore.get_connection() as conn, conn.cursor() as curs:
        table = f"{view.full_name}_{suffix}"
        found = curs.execute(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall()
    return [tuple(row.values()) for row in found]


def test_a_lease_ended_in_its_grants_batch_leaves_the_rows_of_one_event_per_batch(
    service: Service, views: list[View]
) -> None:
    events = lease_events()
    items = [(e, Tracking(APP_NAME, position)) for position, e in enumerate(events, start=1)]
    whole, one_by_one = ViewSet([views[0]]), ViewSet([views[1]])
    whole.record(items[:6])  # three leases end in their grant's batch, the fourth in the next
    whole.record(items[6:])
    for item in items:
        one_by_one.record([item])
    leases = [rows(service, view, "leases", "lease_id") for view in views]
    assert leases[0] == leases[1]
    assert sum(1 for row in leases[0] if row[-1] is not None) == 8  # ended: 8 of 12
    changes = [rows(service, view, "changes", "position") for view in views]
    assert changes[0] == changes[1] and len(changes[0]) == len(events)
    assert {row[1] for row in changes[0]} == {f"acct-{n}\ufffd" for n in range(3)}
