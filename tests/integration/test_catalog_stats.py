"""The catalog's count tables against real Postgres: a catalog made before they existed gets them
filled from its keys, equal to what the worker would have counted."""

from __future__ import annotations

from collections.abc import Callable

from psycopg.sql import SQL

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.reads import ops
from projections.catalog_stats import KeyStats
from tests.helpers import unique
from tests.support import FakeClock


def test_count_tables_added_to_an_existing_catalog_are_filled_from_its_keys(
    make_service: Callable[..., Service], clock: FakeClock
) -> None:
    service = make_service(clock)
    bootstrap.start_projections(service)
    reseller = unique("rs")
    batch = service.app.issue_keys(
        IssueKeys(reseller, Product.INTEGRATIONS, Tier.SCALE, 2, 1, 6, unique("req"))
    )
    last = 0
    for key in batch.keys[:4]:
        clock.advance(days=1)
        last = service.app.activate(key.key_id, unique("acct")).position
    last = service.app.revoke(
        batch.keys[5].key_id, reason="x", revoked_by="ops", by_ops=True
    ).position
    clock.advance(days=40)
    days = ops.default_days(clock().date())

    def read() -> KeyStats:
        return ops.stats(
            service.views,
            reseller_id=reseller,
            product=None,
            now=clock(),
            days=days,
            min_position=last,
            timeout=30,
        )

    counted = read()
    assert {(c.status.value, c.count) for c in counted.counts} == {
        ("issued", 1),
        ("revoked", 1),
        ("expired", 4),
    }
    assert sum(n for _, n in counted.activations_per_day) == 4
    for task in service.background:
        task.stop()
    service.background.clear()
    catalog = service.views.catalog
    with service.datastore.get_connection() as conn:
        for suffix in ("counts", "daily"):
            conn.execute(SQL("DROP TABLE {}").format(catalog.table(suffix)))
    catalog.create_table()
    assert read() == counted
