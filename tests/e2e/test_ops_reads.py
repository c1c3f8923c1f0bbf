"""OpsService.GetKeyStats and ListExpiringSubscriptions over a real channel, on a database of their
own (so whole-catalog counts can be compared), with an injected clock that moves between calls."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from psycopg.sql import SQL

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.key import ActivationKey
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich, unique
from tests.support import Client, FakeClock
from tests.views_support import wait_until

TIERS = [pb.TIER_STARTER, pb.TIER_GROWTH, pb.TIER_SCALE]
TIER_NAME = {pb.TIER_STARTER: "starter", pb.TIER_GROWTH: "growth", pb.TIER_SCALE: "scale"}
STATUS_NAME = {
    pb.KEY_STATUS_ISSUED: "issued",
    pb.KEY_STATUS_ACTIVATED: "activated",
    pb.KEY_STATUS_REVOKED: "revoked",
    pb.KEY_STATUS_EXPIRED: "expired",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 2, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def service(make_service: Callable[..., Service], own_database: str, clock: FakeClock) -> Service:
    built = make_service(clock, database_url=own_database, pool_size=4)
    bootstrap.start_projections(built)
    return built


@pytest.fixture
def client(service: Service, serve_in_process: Callable[[Service], Client]) -> Client:
    return serve_in_process(service)


def stats(client: Client, role: str = "ops", at: int = 0, **fields: Any) -> pb.GetKeyStatsResponse:
    """GetKeyStats once the catalog has reached `at` (the RPC has no min_position)."""
    answers: list[pb.GetKeyStatsResponse] = []

    def reached() -> bool:
        answers.append(
            client.ops.GetKeyStats(
                pb.GetKeyStatsRequest(**fields), metadata=client.as_(role), timeout=10
            )
        )
        return answers[-1].position >= at

    wait_until(reached, f"the catalog reaches {at}", timeout=60)
    return answers[-1]


def counts_of(answer: pb.GetKeyStatsResponse) -> dict[tuple[str, str, str], int]:
    return {
        (c.reseller_id, TIER_NAME[c.tier], STATUS_NAME[c.status]): c.count for c in answer.counts
    }


def sql_counts(
    service: Service, now: datetime, reseller: str = ""
) -> dict[tuple[str, str, str], int]:
    """Counted straight over the catalog's rows, with the read-time expiry rule."""
    keys = service.views.catalog.table("keys")
    statement = SQL(
        "SELECT reseller_id, tier, CASE WHEN status = 'activated' AND period_ends_at <= %s"
        " THEN 'expired' ELSE status END AS status, count(*) AS n FROM {}"
        " WHERE %s IN ('', reseller_id) GROUP BY 1, 2, 3"
    ).format(keys)
    with service.datastore.get_connection() as conn:
        rows = conn.execute(statement, (now, reseller)).fetchall()
    return {(r["reseller_id"], r["tier"], r["status"]): r["n"] for r in rows}


def activation_days(service: Service) -> Counter[date]:
    """The UTC days of the KeyActivated events in the store."""
    app = service.app
    days: Counter[date] = Counter()
    for notification in app.recorder.select_notifications(start=1, limit=1_000_000):
        event = app.mapper.to_domain_event(notification)
        if isinstance(event, ActivationKey.KeyActivated):
            days[event.activated_at.astimezone(UTC).date()] += 1
    return days


def test_key_stats_equal_counts_taken_in_sql_after_a_random_workload(
    client: Client, service: Service, clock: FakeClock
) -> None:
    rng = random.Random(12)
    issued: list[tuple[str, str, str]] = []  # (reseller, key_id, code)
    last = 0
    for reseller in ("acme", "globex", "acme", "globex", "acme"):
        batch = client.issue(
            rng.randint(4, 12), reseller, tier=rng.choice(TIERS), period_months=rng.choice([1, 12])
        )
        issued += [(reseller, k.key_id, k.code) for k in batch.keys]
        last = batch.position
    rng.shuffle(issued)
    activated: list[str] = []
    for reseller, key_id, code in issued:
        roll = rng.random()
        clock.advance(hours=rng.randint(1, 40))
        if roll < 0.55:
            last = client.activate(code, unique("acct"), unique("s")).position
            activated.append(key_id)
        elif roll < 0.7:
            last = client.keys.RevokeKey(
                pb.RevokeKeyRequest(key_id=key_id, reason="test"),
                metadata=client.as_(reseller),
                timeout=10,
            ).position
    for key_id in rng.sample(activated, 3):  # ops may revoke an activated key
        last = client.keys.RevokeKey(
            pb.RevokeKeyRequest(key_id=key_id, reason="refund"),
            metadata=client.as_("ops"),
            timeout=10,
        ).position
    clock.advance(days=35)  # every 1-month period has ended; only some are swept
    stats(client, at=last)
    service.sweeper().sweep_once()
    clock.advance(days=1)
    last = service.app.recorder.max_notification_id() or 0
    now = clock()

    everything = stats(client, at=last, from_date="2025-12-01", to_date="2026-12-31")
    assert counts_of(everything) == sql_counts(service, now)
    statuses = {status for (_, _, status) in counts_of(everything)}
    assert statuses == {"issued", "activated", "revoked", "expired"}

    days = activation_days(service)
    per_day = {date.fromisoformat(d.date): d.count for d in everything.activations_per_day}
    assert len(per_day) == (date(2026, 12, 31) - date(2025, 12, 1)).days + 1
    assert {day: n for day, n in per_day.items() if n} == dict(days)
    assert sum(per_day.values()) == len(activated)

    own = stats(client, "acme", at=last)  # a reseller: its own counts, the last 90 days
    assert counts_of(own) == sql_counts(service, now, "acme")
    assert len(own.activations_per_day) == 90
    assert own.activations_per_day[-1].date == now.date().isoformat()
    assert counts_of(stats(client, at=last, reseller_id="globex")) == sql_counts(
        service, now, "globex"
    )
    assert not stats(client, at=last, product=pb.PRODUCT_CLOUD_POS).counts


def test_a_reseller_reads_only_its_own_stats_and_bad_ranges_are_refused(client: Client) -> None:
    assert stats(client, "acme", reseller_id="acme").position >= 0
    with pytest.raises(grpc.RpcError) as denied:
        stats(client, "acme", reseller_id="globex")
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as denied:
        stats(client, "portal")
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    cases: list[tuple[dict[str, Any], str]] = [
        ({"from_date": "2026-13-01"}, "from_date"),
        ({"to_date": "1 Dec"}, "to_date"),
        ({"from_date": "2026-05-02", "to_date": "2026-05-01"}, "from_date"),
        ({"from_date": "2000-01-01", "to_date": "2026-01-01"}, "from_date"),
        ({"product": 42}, "product"),
    ]
    for fields, field in cases:
        with pytest.raises(grpc.RpcError) as refused:
            stats(client, **fields)
        found = rich(refused.value)
        assert found.code is grpc.StatusCode.INVALID_ARGUMENT, fields
        assert field in found.violations, found


def expiring(
    client: Client, role: str = "ops", **fields: Any
) -> pb.ListExpiringSubscriptionsResponse:
    answer: pb.ListExpiringSubscriptionsResponse = client.ops.ListExpiringSubscriptions(
        pb.ListExpiringSubscriptionsRequest(**fields), metadata=client.as_(role), timeout=10
    )
    return answer


def all_pages(
    client: Client, role: str = "ops", between: Callable[[], None] = lambda: None, **fields: Any
) -> list[pb.Entitlement]:
    rows: list[pb.Entitlement] = []
    token = ""
    while True:
        page = expiring(client, role, page_token=token, **fields)
        rows += page.entitlements
        token = page.next_page_token
        if not token:
            return rows
        between()


def stamp(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def test_expiring_subscriptions_are_ordered_windowed_paged_and_scoped(
    client: Client, service: Service, clock: FakeClock
) -> None:
    start = clock()
    monthly = {r: list(client.issue(24, r, period_months=1).keys) for r in ("acme", "globex")}
    yearly = client.issue(3, "acme", period_months=12).keys
    ends: dict[str, tuple[datetime, str, str]] = {}  # key id → (end, reseller, account)
    last = 0
    for reseller, keys in monthly.items():
        for offset, key in enumerate(keys[:20]):
            clock.set(start - timedelta(days=offset * 2, hours=offset))  # ends spread over 40 days
            account = unique(f"acct-{reseller}")
            done = client.activate(key.code, account, unique("s"))
            ends[key.key_id] = (done.entitlement.period_ends_at.ToDatetime(UTC), reseller, account)
            last = done.position
    clock.set(start)
    for key in yearly:
        last = client.activate(key.code, unique("acct"), unique("s")).position
    revoked = [monthly["acme"][1].key_id, monthly["globex"][2].key_id]
    for key_id in revoked:
        last = client.keys.RevokeKey(
            pb.RevokeKeyRequest(key_id=key_id, reason="fraud"),
            metadata=client.as_("ops"),
            timeout=10,
        ).position
    stats(client, at=last)
    service.sweeper().sweep_once()  # records the ended ones expired
    clock.advance(hours=1)
    now = clock()
    window = now + timedelta(days=30)
    expected = sorted(
        (end, key_id)
        for key_id, (end, _, _) in ends.items()
        if now < end < window and key_id not in revoked
    )
    assert 10 < len(expected) < 40  # some ended, some beyond the window

    assert [(e.period_ends_at.ToDatetime(UTC), e.key_id) for e in all_pages(client)] == expected
    rows = all_pages(client)
    first = rows[0]
    _, reseller, account = ends[first.key_id]
    assert (first.account_id, first.reseller_id, first.tier, first.seats) == (
        account,
        reseller,
        pb.TIER_GROWTH,
        3,
    )
    assert first.hint.startswith("INT-") and first.source == pb.ENTITLEMENT_SOURCE_KEY

    # Pages of 4 while new keys are activated between pages: every row that was there from the
    # start comes exactly once, whatever the new rows do to the order.
    fresh = iter(monthly["acme"][20:] + monthly["globex"][20:])

    def activate_one() -> None:
        key = next(fresh, None)
        if key is not None:
            client.activate(key.code, unique("acct"), unique("s"))

    paged = all_pages(client, between=activate_one, page_size=4)
    seen = Counter(e.key_id for e in paged)
    assert max(seen.values()) == 1
    assert {key_id for _, key_id in expected} <= set(seen)
    assert [(e.period_ends_at.ToDatetime(UTC), e.key_id) for e in paged] == sorted(
        (e.period_ends_at.ToDatetime(UTC), e.key_id) for e in paged
    )

    # A narrower window, and scoping: a reseller sees only its own; ops can ask for one. First
    # the catalog takes in the activations made between pages, so the reads below agree.
    stats(client, at=service.app.recorder.max_notification_id() or 0)
    soon = now + timedelta(days=10)
    assert [e.key_id for e in all_pages(client, before=stamp(soon))] == [
        key_id
        for end, key_id in sorted(
            (e.period_ends_at.ToDatetime(UTC), e.key_id) for e in all_pages(client)
        )
        if end < soon
    ]
    for reseller in ("acme", "globex"):
        own = all_pages(client, reseller)
        assert own and {e.reseller_id for e in own} == {reseller}
        assert [e.key_id for e in all_pages(client, reseller_id=reseller)] == [
            e.key_id for e in own
        ]
        assert all(ends[e.key_id][2] == e.account_id for e in own if e.key_id in ends)
    assert not set(revoked) & {e.key_id for e in all_pages(client)}


def test_expiring_refuses_other_resellers_and_foreign_page_tokens(client: Client) -> None:
    keys = client.issue(3, "acme", period_months=1).keys
    last = 0
    for key in keys:
        last = client.activate(key.code, unique("acct"), unique("s")).position
    stats(client, at=last)  # the catalog holds the three
    token = expiring(client, page_size=1).next_page_token
    assert token
    cases: list[tuple[dict[str, Any], str]] = [
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_token": token, "reseller_id": "acme"}, "reseller_id"),
        ({"page_token": token, "before": stamp(datetime(2030, 1, 1, tzinfo=UTC))}, "before"),
        ({"page_size": -1}, "page_size"),
    ]
    for fields, field in cases:
        with pytest.raises(grpc.RpcError) as refused:
            expiring(client, **fields)
        found = rich(refused.value)
        assert found.code is grpc.StatusCode.INVALID_ARGUMENT, fields
        assert field in found.violations, found
    capped = expiring(client, page_size=100_000).entitlements  # capped at 500, not refused
    assert {k.key_id for k in keys} <= {e.key_id for e in capped}  # others' keys may be there too
    assert len(capped) <= 500


def test_a_range_at_the_calendars_end_answers_and_is_no_internal_error(client: Client) -> None:
    for fields in ({"from_date": "9999-12-30"}, {"to_date": "0001-01-02"}):
        answer = client.ops.GetKeyStats(
            pb.GetKeyStatsRequest(**fields), metadata=client.as_("ops"), timeout=10
        )
        assert len(answer.activations_per_day) == 2  # the range stops at the calendar's end
