"""Seat leases against real Postgres (rules §12): the limit under racing threads of two service
instances, retries, expiry without a sweeper, shrinking seats, and sweepers recording each expiry
exactly once. Time is the injected clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from uuid import UUID

import psycopg
import pytest

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.seats import NoActiveSubscription, NoSeatAvailable
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.seats.answers import Release
from license_svc.seats.book import Grant
from license_svc.seats.sweeper import LeaseSweeper
from license_svc.seats.table import LOCK_NAMESPACE
from projections.allowance import AllowanceView
from tests.helpers import EVENTS_TABLE, unique
from tests.support import FakeClock

INT = Product.INTEGRATIONS


def account_with_keys(service: Service, *seats: int) -> tuple[str, list[UUID]]:
    """A new account holding one activated key per entry of `seats`, once the view shows it."""
    account, keys, last = unique("acct"), [], 0
    for count in seats:
        batch = service.app.issue_keys(
            IssueKeys("acme", INT, Tier.GROWTH, count, 12, 1, unique("req"))
        )
        key_id = batch.keys[0].key_id
        last = service.app.activate(key_id, account).position
        keys.append(key_id)
    wait_for_view(service, last)
    return account, keys


def wait_for_view(service: Service, position: int) -> None:
    service.views.read(AllowanceView, position, 60, lambda view: (None, view.position()))


def acquire(service: Service, account: str, connection: str | None = None, ttl: int = 60) -> Grant:
    return service.seats.acquire(account, INT, connection or unique("conn"), "holder-a", ttl)


def endings(sql: psycopg.Connection, lease_ids: list[UUID]) -> list[tuple[str, int]]:
    rows = sql.execute(
        f"SELECT topic, count(*) FROM {EVENTS_TABLE} WHERE originator_id = ANY(%s)"
        " AND originator_version = 2 GROUP BY topic",
        (lease_ids,),
    ).fetchall()
    return [(str(topic).rsplit(".", 1)[-1], int(n)) for topic, n in rows]


@pytest.fixture
def two(make_service: Callable[..., Service], clock: FakeClock) -> tuple[Service, Service]:
    # 20 threads share each one's pool: they may wait for a connection longer than a server's
    # call would (which answers UNAVAILABLE then), so the race measures the limit, not the pool.
    first = make_service(clock, pool_timeout=30.0)
    bootstrap.start_projections(first)
    return first, make_service(clock, pool_timeout=30.0)


def test_forty_threads_of_two_instances_racing_for_five_seats_get_exactly_five(
    two: tuple[Service, Service],
) -> None:
    account, _ = account_with_keys(two[0], 5)
    start = threading.Barrier(40)
    granted: list[Grant] = []
    refused: list[NoSeatAvailable] = []

    def race(service: Service) -> None:
        start.wait()
        try:
            granted.append(acquire(service, account))
        except NoSeatAvailable as error:
            refused.append(error)

    threads = [threading.Thread(target=race, args=(two[i % 2],)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(granted), len(refused)) == (5, 35)
    assert {error.seats for error in refused} == {5}
    assert sorted(g.lease.lease_id for g in granted) == sorted(
        x.lease_id for x in two[1].seats.live(account, INT)
    )


def test_a_retried_acquire_gets_its_own_lease_back_renewed_and_takes_no_second_seat(
    service: Service, clock: FakeClock
) -> None:
    bootstrap.start_projections(service)
    account, _ = account_with_keys(service, 2)
    first = acquire(service, account, "conn-1")
    clock.advance(seconds=30)
    again = acquire(service, account, "conn-1")
    assert again.lease.lease_id == first.lease.lease_id
    assert again.lease.expires_at > first.lease.expires_at
    assert (again.granted, again.seats_leased) == (False, 1)


def test_an_account_without_a_subscription_gets_no_seat(service: Service) -> None:
    with pytest.raises(NoActiveSubscription, match="No active Integrations subscription"):
        acquire(service, unique("acct"))


def test_a_lease_past_its_ttl_frees_its_seat_at_once_and_its_renewal_is_lost(
    service: Service, clock: FakeClock
) -> None:
    bootstrap.start_projections(service)
    account, _ = account_with_keys(service, 1)
    held = acquire(service, account, ttl=10)
    with pytest.raises(NoSeatAvailable) as refused:
        acquire(service, account)
    assert refused.value.retry_after.total_seconds() == 10
    clock.advance(seconds=10)  # its expires_at: the seat is free from this instant
    taken = acquire(service, account)
    assert taken.seats_leased == 1
    [renewal] = service.seats.renew("holder-a", [held.lease.lease_id])
    assert renewal.lost


def test_renewal_keeps_a_lease_live_past_its_first_ttl(service: Service, clock: FakeClock) -> None:
    bootstrap.start_projections(service)
    account, _ = account_with_keys(service, 1)
    held = acquire(service, account, ttl=30)
    for _ in range(4):
        clock.advance(seconds=20)
        [renewal] = service.seats.renew("holder-a", [held.lease.lease_id])
        assert renewal.renewed and not renewal.over_allowance
    with pytest.raises(NoSeatAvailable):
        acquire(service, account)
    [other] = service.seats.renew("another-holder", [held.lease.lease_id])
    assert other.lost  # not this holder's lease


def test_revoked_seats_cut_no_lease_but_mark_the_newest_over_the_allowance(
    service: Service, clock: FakeClock
) -> None:
    bootstrap.start_projections(service)
    account, (_, three_seats) = account_with_keys(service, 2, 3)
    leases = []
    for _ in range(5):
        leases.append(acquire(service, account).lease.lease_id)
        clock.advance(seconds=1)
    revoked = service.app.revoke(three_seats, reason="fraud", revoked_by="ops", by_ops=True)
    wait_for_view(service, revoked.position)
    with pytest.raises(NoSeatAvailable, match="All 2 seats are in use"):
        acquire(service, account)
    renewals = service.seats.renew("holder-a", leases)
    assert all(r.renewed for r in renewals)
    assert [r.over_allowance for r in renewals] == [False, False, True, True, True]
    for lease_id in leases[2:]:
        assert service.seats.release(lease_id).released
    assert len(service.seats.live(account, INT)) == 2
    with pytest.raises(NoSeatAvailable):
        acquire(service, account)
    service.seats.release(leases[0])
    acquire(service, account)
    with pytest.raises(NoSeatAvailable):
        acquire(service, account)


def test_releasing_twice_records_one_release(service: Service, sql: psycopg.Connection) -> None:
    bootstrap.start_projections(service)
    account, _ = account_with_keys(service, 1)
    lease_id = acquire(service, account).lease.lease_id
    assert service.seats.release(lease_id).released
    assert not service.seats.release(lease_id).released
    assert endings(sql, [lease_id]) == [("SeatLeaseReleased", 1)]


def test_two_racing_sweepers_record_each_expiry_exactly_once(
    two: tuple[Service, Service], clock: FakeClock, sql: psycopg.Connection
) -> None:
    account, _ = account_with_keys(two[0], 12)
    leases = [acquire(two[i % 2], account, ttl=10).lease.lease_id for i in range(12)]
    two[0].seats.release(leases[0])
    clock.advance(seconds=11)
    acquire(two[1], account)  # takes back the expired leases itself
    start = threading.Barrier(2)
    recorded: list[int] = []

    def sweep(service: Service) -> None:
        sweeper = LeaseSweeper(service.seats, batch=3)
        start.wait()
        recorded.append(sweeper.sweep_once())

    threads = [threading.Thread(target=sweep, args=(s,)) for s in two]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(recorded) >= 11  # other tests' leases may be due too
    assert sorted(endings(sql, leases)) == [("SeatLeaseExpired", 11), ("SeatLeaseReleased", 1)]
    expired_at = sql.execute(
        f"SELECT count(*) FROM {EVENTS_TABLE} WHERE originator_id = ANY(%s)"
        " AND originator_version = 2",
        (leases,),
    ).fetchone()
    assert expired_at == (12,)


def test_commands_that_wait_together_share_one_transaction_and_keep_their_own_answers(
    service: Service, sql: psycopg.Connection
) -> None:
    """A group of acquires and releases on three accounts, held back behind an account lock
    until all of them queue: one transaction, releases decided first, each account counted
    apart, a connection named twice gets one lease, every event at its own position."""
    bootstrap.start_projections(service)
    one, _ = account_with_keys(service, 1)
    full, _ = account_with_keys(service, 3)
    two, _ = account_with_keys(service, 2)
    held = [acquire(service, full).lease.lease_id for _ in range(3)]  # 3 of 3
    book = service.seats
    blocker = psycopg.connect(sql.info.dsn, autocommit=False)
    blocker.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s || '/' || %s))",
        (LOCK_NAMESPACE, one, INT.value),
    )

    async def run() -> list[object]:
        first = asyncio.ensure_future(book.acquire_async(one, INT, "first", "h", 60))
        while book._commands.groups == groups_before and not blocked(sql):
            await asyncio.sleep(0.01)
        queued = [
            book.acquire_async(full, INT, "c-full-1", "h", 60),  # decided after the release
            book.acquire_async(full, INT, "c-full-2", "h", 60),
            book.release_async(held[0]),
            book.release_async(held[0]),  # named twice: released once
            book.acquire_async(two, INT, "c-two", "h", 60),
            book.acquire_async(two, INT, "c-two", "h", 60),  # the same connection: one lease
            book.acquire_async(two, INT, "c-two-b", "h", 60),
            book.acquire_async(one, INT, "second", "h", 60),  # its one seat goes to `first`
        ]
        tasks = [asyncio.ensure_future(c) for c in queued]
        while book._commands.queued() < len(tasks):
            await asyncio.sleep(0.01)
        blocker.commit()  # the first group goes on; everything queued is the next one
        return await asyncio.gather(first, *tasks, return_exceptions=True)

    groups_before = book._commands.groups
    answers = asyncio.run(run())
    blocker.close()
    assert book._commands.groups == groups_before + 2
    first, full_1, full_2, released, again, two_a, two_b, two_c, second = answers
    assert isinstance(first, Grant) and first.granted
    assert isinstance(released, Release) and released.released
    assert isinstance(again, Release) and not again.released
    assert [type(a) for a in (full_1, full_2)].count(Grant) == 1  # the released seat, once
    assert [type(a) for a in (full_1, full_2)].count(NoSeatAvailable) == 1
    assert isinstance(two_a, Grant) and isinstance(two_b, Grant) and isinstance(two_c, Grant)
    assert two_b.lease.lease_id == two_a.lease.lease_id and not two_b.granted
    assert (two_a.seats_leased, two_c.seats_leased) == (1, 2)
    assert isinstance(second, NoSeatAvailable)
    grants = [a for a in answers if isinstance(a, Grant) and a.granted]
    positions = [a.position for a in grants] + [released.position]
    assert len(set(positions)) == len(positions) == 5 and all(positions)
    stored: dict[int, UUID] = dict(
        sql.execute(
            f"SELECT notification_id, originator_id FROM {EVENTS_TABLE}"
            " WHERE notification_id = ANY(%s)",
            (positions,),
        ).fetchall()
    )
    assert stored == {
        **{a.position: a.lease.lease_id for a in grants},
        released.position: held[0],
    }
    assert len(book.live(two, INT)) == 2 and len(book.live(full, INT)) == 3


def blocked(sql: psycopg.Connection) -> bool:
    """Some session waits for an advisory lock."""
    row = sql.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()
    return bool(row and row[0])
