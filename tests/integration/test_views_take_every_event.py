"""Every event the domain can record is one every view can apply, on a real PostgreSQL.

Hypothesis writes keys through all four events (and plans through theirs) with every value the
domain accepts — any text the store can hold, NUL and other control characters included, any
tier, seats and period of SPEC's ranges, any instant of years 1..9999 in any offset — stores
them through the library, and has the worker's own write path (`ViewSet.record`) apply them
to the catalog, summary and allowance views. Each view must then hold exactly the key's (or
plan's) final state, with text escaped only where PostgreSQL text cannot hold it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import Tracking
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.key import PERIOD_MONTHS, SEATS, ActivationKey, KeyStatus
from license_svc.domain.plan import MAX_SEATS, PlanKind, ProviderEvent
from license_svc.domain.plan import Plan as PlanAggregate
from license_svc.domain.tiers import Product, Tier
from projections.base import APP_NAME, View, pg_text
from projections.registry import NAMES, view_class
from projections.workers.viewset import ViewSet
from tests.views_support import fresh_database, settings_for

TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),  # the store refuses Cs
    st.sampled_from(
        ["", "\x00", "fraud\x00oops", "\x00\x00", "\\N", "\\.", "a\tb\nc\\d", "\ufffd"]
    ),
)
OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12, minutes=45))]
)
# Years 1..9999 in any of those offsets, still inside years 1..9999 once in UTC.
MOMENTS = st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=OFFSETS)
KEY_PATHS = ["issued", "activated", "revoked", "activated-revoked", "expired"]


@st.composite
def keys(draw: st.DrawFn) -> ActivationKey:
    key = ActivationKey.issue(
        uuid4(),
        product=draw(st.sampled_from(Product)),
        tier=draw(st.sampled_from(Tier)),
        seats=draw(st.integers(SEATS[0], SEATS[-1])),
        period_months=draw(st.integers(PERIOD_MONTHS[0], PERIOD_MONTHS[-1])),
        reseller_id=draw(TEXT),
        batch_id=draw(TEXT),
        hint=draw(TEXT),
    )
    path = draw(st.sampled_from(KEY_PATHS))
    try:
        if path in ("activated", "activated-revoked", "expired"):
            key.activate(draw(TEXT), draw(MOMENTS))
    except (OverflowError, ValueError):
        reject()  # a period that would end after year 9999: the domain refuses it
    if path in ("revoked", "activated-revoked"):
        key.revoke(reason=draw(TEXT), revoked_by=draw(TEXT), by_ops=True, now=draw(MOMENTS))
    if path == "expired":
        assert key.period_ends_at is not None
        assert key.expire(key.period_ends_at)
    return key


@st.composite
def plans(draw: st.DrawFn) -> PlanAggregate:
    account, product = draw(TEXT), draw(st.sampled_from(Product))

    def provider_event(kind: PlanKind) -> ProviderEvent:
        starts, length = draw(MOMENTS), draw(st.integers(1, 10**6))
        try:
            ends = starts + timedelta(minutes=length)
        except OverflowError:
            reject()
        return ProviderEvent(
            billing_event_id=draw(TEXT),
            subscription_id=subscription,
            account_id=account,
            product=product,
            tier=draw(st.sampled_from(Tier)),
            seats=draw(st.integers(1, MAX_SEATS)),
            kind=kind,
            period_starts_at=starts,
            period_ends_at=ends,
            occurred_at=draw(MOMENTS),
            cancel_at_period_end=draw(st.booleans()),
        )

    subscription = draw(TEXT)
    first = provider_event(draw(st.sampled_from(PlanKind)))
    plan = PlanAggregate.start(uuid4(), first, draw(MOMENTS))
    for kind in draw(st.lists(st.sampled_from(PlanKind), max_size=2)):
        plan.record(provider_event(kind), draw(MOMENTS))
    if draw(st.booleans()):
        plan.expire(plan.ends_at)
    return plan


@pytest.fixture(scope="module")
def service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with fresh_database(database_url) as url:
        var = Path(tmp_path_factory.mktemp("views-var"))
        built = bootstrap.build(settings_for(url, var, LICENSE_SVC_POOL_SIZE="2"))
        try:
            yield built
        finally:
            built.close()


@pytest.fixture(scope="module")
def views(service: Service) -> list[View]:
    made = [view_class(name).at(service.datastore, 1) for name in NAMES]
    for view in made:
        view.create_table()
    return made


def project(service: Service, views: list[View]) -> None:
    """What a worker does with the events after the views' positions: one batch, one commit."""
    viewset = ViewSet(views)
    start = viewset.max_tracking_id(APP_NAME) or 0
    notifications = service.app.recorder.select_notifications(start + 1, 10_000)
    items = [
        (service.app.mapper.to_domain_event(n), Tracking(APP_NAME, n.id)) for n in notifications
    ]
    viewset.record(items)


def rows(
    conn: psycopg.Connection, table: str, columns: str, ids: list[UUID]
) -> set[tuple[Any, ...]]:
    found = conn.execute(f"SELECT {columns} FROM {table} WHERE key_id = ANY(%s)", (ids,))
    return {tuple(row) for row in found.fetchall()}


ENTITLEMENT = (
    "key_id, account_id, product, tier, seats, starts_at, ends_at, source, subscription_id"
)
CATALOG = (
    "key_id, product, tier, seats, period_months, reseller_id, batch_id, hint, status,"
    " account_id, activated_at, period_starts_at, period_ends_at, revoked_at, revoked_reason,"
    " revoked_by, expired_at, version"
)


def text_or_none(value: str | None) -> str | None:
    return None if value is None else pg_text(value)


def catalog_row(key: ActivationKey) -> tuple[Any, ...]:
    return (
        key.id, key.product.value, key.tier.value, key.seats, key.period_months,
        pg_text(key.reseller_id), pg_text(key.batch_id), pg_text(key.hint), key.status.value,
        text_or_none(key.account_id), key.activated_at, key.period_starts_at, key.period_ends_at,
        key.revoked_at, text_or_none(key.revoked_reason), text_or_none(key.revoked_by),
        key.expired_at, key.version,
    )  # fmt: skip


def entitlement_rows(found: list[ActivationKey], held: list[PlanAggregate]) -> set[tuple[Any, ...]]:
    from_keys = {
        (k.id, pg_text(k.account_id or ""), k.product.value, k.tier.value, k.seats,
         k.period_starts_at, k.period_ends_at, "key", "")
        for k in found
        if k.status is KeyStatus.ACTIVATED
    }  # fmt: skip
    from_plans = {
        (p.id, pg_text(p.account_id), p.product.value, p.tier.value, p.seats, p.period_starts_at,
         p.ends_at, "plan", pg_text(p.subscription_id))
        for p in held
        if not p.expired
    }  # fmt: skip
    return from_keys | from_plans


def revoked_with_a_nul() -> ActivationKey:
    """The event of issue 7: a reseller's revoke of its own key, a NUL in the reason."""
    key = ActivationKey.issue(
        uuid4(), product=Product.INTEGRATIONS, tier=Tier.GROWTH, seats=3, period_months=12,
        reseller_id="acme", batch_id="b-1", hint="INT-••••-••••-7QX4",
    )  # fmt: skip
    key.revoke(
        reason="fraud\x00oops", revoked_by="reseller:acme", by_ops=False, now=datetime.now(UTC)
    )
    return key


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(found=st.lists(keys(), min_size=1, max_size=6), held=st.lists(plans(), max_size=2))
@example(found=[revoked_with_a_nul()], held=[])
def test_every_view_applies_every_event_the_domain_can_record(
    service: Service, views: list[View], found: list[ActivationKey], held: list[PlanAggregate]
) -> None:
    service.app.save(*found, *held)
    project(service, views)
    key_ids = [k.id for k in found]
    all_ids = [*key_ids, *(p.id for p in held)]
    with psycopg.connect(service.settings.database_url, autocommit=True) as conn:
        catalog = rows(conn, "catalog_g1_keys", CATALOG, key_ids)
        assert catalog == {catalog_row(k) for k in found}
        expected = entitlement_rows(found, held)
        pending = {
            (k.id, k.product.value, k.tier.value, k.seats)
            for k in found
            if k.status is KeyStatus.ISSUED
        }
        for name in ("summary", "allowance"):
            assert rows(conn, f"{name}_g1_entitlements", ENTITLEMENT, all_ids) == expected
            assert (
                rows(conn, f"{name}_g1_pending", "key_id, product, tier, seats", key_ids) == pending
            )
        hints = rows(conn, "summary_g1_entitlements", "key_id, hint", key_ids)
        assert hints == {(k.id, pg_text(k.hint)) for k in found if k.status is KeyStatus.ACTIVATED}
