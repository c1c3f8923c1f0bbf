"""A rebuild's fold (`projections.workers.fold`) leaves exactly the rows that the views' batches
leave when they are given the same events one at a time: every table of every view, the
catalog's counts and days and the allowance's change log and leases included, whatever the
events (any text the store holds, every path of a key, plans, seat leases) and wherever the
fold's reads cut the store (an aggregate split between two reads is folded whole). A fold that
fails leaves its generation empty, at position 0."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import Tracking
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from license_svc.bootstrap import Service
from license_svc.domain.key import ActivationKey
from license_svc.domain.plan import Plan
from license_svc.domain.tiers import Product, Tier
from projections import generations
from projections.base import APP_NAME, View
from projections.catalog import CatalogView
from projections.registry import NAMES, view_class
from projections.workers.fold import fold
from projections.workers.viewset import ViewSet
from tests.integration.test_lease_rows import lease_events
from tests.integration.test_views_take_every_event import keys, plans
from tests.views_support import service_on_fresh_database


@pytest.fixture(scope="module")
def service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service_on_fresh_database(database_url, tmp_path_factory.mktemp("fold-var")) as built:
        yield built


T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def generation() -> int:
    return random.randrange(10**6, 10**9)


@pytest.fixture(scope="module")
def one_by_one(service: Service) -> list[View]:
    """A generation of each view given every event in a batch of its own, kept up to date."""
    made = [view_class(name).at(service.datastore, generation()) for name in NAMES]
    for view in made:
        view.create_table()
    return made


def catch_up(service: Service, views: list[View]) -> int:
    """Each event after the views' position, one batch each; the head they reach."""
    viewset = ViewSet(views)
    start = viewset.max_tracking_id(APP_NAME) or 0
    for n in service.app.recorder.select_notifications(start + 1, 100_000):
        viewset.record([(service.app.mapper.to_domain_event(n), Tracking(APP_NAME, n.id))])
    return service.app.recorder.max_notification_id() or 0


def drop(service: Service, view: View) -> None:
    with service.datastore.get_connection() as conn:
        for table in [*view.table_names(), view.tracking_table_name]:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def folded(service: Service, name: str, head: int, chunk: int) -> View:
    view = view_class(name).at(service.datastore, generation())
    view.create_table()
    fold(service.app, view, head, chunk=chunk)
    return view


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    found=st.lists(keys(), max_size=6),
    held=st.lists(plans(), max_size=2),
    leases=st.booleans(),
    chunk=st.integers(1, 9),
)
def test_a_fold_leaves_the_rows_of_one_event_per_batch(
    service: Service,
    one_by_one: list[View],
    found: list[ActivationKey],
    held: list[Plan],
    leases: bool,
    chunk: int,
) -> None:
    service.app.save(*found, *held)
    if leases:
        service.app.recorder.insert_events(
            [service.app.mapper.to_stored_event(e) for e in lease_events()]
        )
    head = catch_up(service, one_by_one)
    with psycopg.connect(service.settings.database_url, autocommit=True) as conn:
        for expected in one_by_one:
            view = folded(service, expected.name, head, chunk)
            try:
                assert view.position() == expected.position() == head
                found_differences = generations.differences(
                    conn, type(view), view.generation, expected.generation
                )
                assert found_differences == {}, expected.name
            finally:
                drop(service, view)


def every_path() -> list[ActivationKey]:
    """A key of each path: issued, activated, revoked unredeemed, activated then revoked,
    activated then expired (in the catalog, counts that end at zero)."""
    made = []
    for path in ("issued", "activated", "revoked", "activated-revoked", "expired"):
        key = ActivationKey.issue(
            uuid4(), product=Product.INTEGRATIONS, tier=Tier.GROWTH, seats=3, period_months=12,
            reseller_id="acme\x00", batch_id="b-1", hint="INT-••••-••••-7QX4",
        )  # fmt: skip
        if path in ("activated", "activated-revoked", "expired"):
            key.activate("acct-1", T0)
        if path in ("revoked", "activated-revoked"):
            key.revoke(reason="fraud\x00", revoked_by="ops", by_ops=True, now=T0)
        if path == "expired":
            assert key.period_ends_at is not None and key.expire(key.period_ends_at)
        made.append(key)
    return made


def test_the_catalog_counts_and_days_a_fold_leaves_are_the_batches(
    service: Service, one_by_one: list[View]
) -> None:
    service.app.save(*every_path())
    head = catch_up(service, one_by_one)
    catalog = next(v for v in one_by_one if v.name == "catalog")
    view = folded(service, "catalog", head, 3)
    try:
        with psycopg.connect(service.settings.database_url, autocommit=True) as conn:
            assert (
                generations.differences(conn, CatalogView, view.generation, catalog.generation)
                == {}
            )
            counts = conn.execute(f'SELECT n FROM "{view.full_name}_counts"').fetchall()
            days = conn.execute(f'SELECT n FROM "{view.full_name}_daily"').fetchall()
    finally:
        drop(service, view)
    assert days and any(n == 0 for (n,) in counts) and any(n for (n,) in counts)


@pytest.mark.parametrize("name", NAMES)
def test_a_fold_that_fails_leaves_its_generation_empty(
    service: Service, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.app.save(*every_path())
    head = service.app.recorder.max_notification_id() or 0
    reads = 0
    select = service.app.store.select_by_aggregate

    def fails_on_the_third_read(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 3:
            raise psycopg.OperationalError("the database went away")
        return select(*args)

    monkeypatch.setattr(service.app.store, "select_by_aggregate", fails_on_the_third_read)
    view = view_class(name).at(service.datastore, generation())
    view.create_table()
    try:
        with pytest.raises(psycopg.OperationalError):
            fold(service.app, view, head, chunk=1)
        assert view.position() == 0
        with psycopg.connect(service.settings.database_url, autocommit=True) as conn:
            for table in view.table_names():
                row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                assert row == (0,), table
    finally:
        drop(service, view)


def schema_of(conn: psycopg.Connection[Any], view: View) -> set[tuple[str, ...]]:
    """The generation's indexes and constraints, named without the generation."""
    prefix = view.full_name + "_"
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE %s", (prefix + "%",)
    ).fetchall()
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid::regclass::text LIKE %s",
        (prefix + "%",),
    ).fetchall()
    return {tuple(str(v).replace(prefix, "") for v in row) for row in [*indexes, *constraints]}


@pytest.mark.parametrize("name", NAMES)
def test_a_folded_generation_has_every_key_and_constraint_of_a_new_one(
    service: Service, one_by_one: list[View], name: str
) -> None:
    """The fold adds the primary keys and unique constraints of the tables it copies into
    once their rows are in: by the same names and definitions as the tables were made with."""
    service.app.save(*every_path())
    head = catch_up(service, one_by_one)
    expected = next(v for v in one_by_one if v.name == name)
    view = folded(service, name, head, 4)
    try:
        with psycopg.connect(service.settings.database_url, autocommit=True) as conn:
            found, made = schema_of(conn, view), schema_of(conn, expected)
            assert found == made
            assert any("PRIMARY KEY" in row[-1] for row in found)
            assert (
                generations.differences(conn, type(view), view.generation, expected.generation)
                == {}
            )
    finally:
        drop(service, view)
