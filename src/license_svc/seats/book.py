"""Seat leases (rules §12): acquire, renew, release and list, shared by every replica.

The limit holds by construction. Every acquire of an (account, product) runs in one transaction
that first takes that account's advisory lock, so acquires of one account run one after another
on every replica; under the lock it reads the time (the database's clock, one timeline for all
replicas, unless a test injected one), ends the leases already past their `expires_at`, counts
the open ones against the seats the allowance view holds (keys and plans stacked, §6), and only
then inserts the lease and appends `SeatLeaseGranted` — both in the same transaction, so the
count, the row and the event commit together. Nothing else adds a live lease: a renewal extends
only a lease that is still open and not yet past its `expires_at`, and an acquire ends every
expired lease (waiting for the row if a renewal holds it) before it counts. Releases and
expiries only take leases away. So at no instant are there more live leases than seats.

A lease past its `expires_at` is not counted from that instant: the next acquire ends it itself
(no sweeper needed); the sweeper records its `SeatLeaseExpired` afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.persistence import ProgrammingError
from eventsourcing.postgres import PostgresDatastore
from psycopg import Connection, Cursor
from psycopg.rows import DictRow

from license_svc.adapters.application import EventStore
from license_svc.adapters.clock import Clock, utcnow
from license_svc.domain.seats import (
    Held,
    NoActiveSubscription,
    NoSeatAvailable,
    SeatLease,
    ending,
    over_allowance,
)
from license_svc.domain.subscription import subscription_at
from license_svc.domain.tiers import Product

from .answers import Account, AllowanceRows, Grant, Lease, Release, Renewal
from .table import LeaseTable

T = TypeVar("T")
# A heartbeat does not wait for its WAL flush (as the limiter's reservations): a crash of the
# database can lose the last fraction of a second of renewals, which only moves those leases'
# expires_at back to the renewal before — still ahead, with heartbeats at a third of the TTL.
# The limit never depends on it: acquires and releases commit synchronously.
ASYNC_COMMIT = b"SET LOCAL synchronous_commit = off"


class SeatBook:
    def __init__(
        self,
        app: EventStore,
        allowance: Callable[[], AllowanceRows],
        clock: Clock | None = None,
        refresh: Callable[[], None] = lambda: None,
    ) -> None:
        """`allowance`: the allowance view's live generation; `refresh` re-reads which one that
        is (a rebuild may have switched and dropped the old one unheard). `clock=None`: the
        database's clock (production); a test passes its own."""
        self._app = app
        self._allowance = allowance
        self._clock = clock
        self._refresh = refresh
        datastore: PostgresDatastore = app.store.datastore
        self._datastore = datastore
        self.table = LeaseTable(datastore.schema or "public")

    def create_table(self) -> None:
        with self._datastore.transaction(commit=True) as curs:
            for statement in self.table.create:
                curs.execute(statement)

    @property
    def datastore(self) -> PostgresDatastore:
        return self._datastore

    def now(self) -> datetime | None:
        """The injected clock's time, or None: the database's clock then, read in the statement."""
        return self._clock() if self._clock is not None else None

    # -- commands ----------------------------------------------------------------------------

    def acquire(
        self, account_id: str, product: Product, connection_id: str, holder: str, ttl: int
    ) -> Grant:
        return self._on_live_view(self._acquire, account_id, product, connection_id, holder, ttl)

    def _acquire(
        self, account_id: str, product: Product, connection_id: str, holder: str, ttl: int
    ) -> Grant:
        """Two round trips in one transaction: the lock, the time, the lapsed leases ended, the
        open leases and the entitlements; then the lease row and its event, and COMMIT."""
        t = self.table
        account = (account_id, product.value)
        # Entitlements that ended a day before the clock reads cannot count at the database's
        # time under the lock; the rule below drops any other ended one exactly.
        since = (self.now() or utcnow()) - timedelta(days=1)
        with self.pipelined() as (conn, curs, insert):
            with conn.transaction():
                curs.execute(t.state, (account_id, product.value, self.now()), prepare=True)
                held, _ = self._allowance().entitlements_in(insert, [account], since)
                rows = curs.fetchall()
                now: datetime = rows[0]["at_now"]
                open_leases = [
                    Lease.of({**r, "account_id": account_id, "product": product.value})
                    for r in rows
                    if r["lease_id"] is not None
                ]
                subscription = subscription_at(product, held[account], now)
                if not subscription.active:
                    raise NoActiveSubscription(product)
                seats, leased = subscription.seats, len(open_leases)
                mine = next((x for x in open_leases if x.connection_id == connection_id), None)
                if mine is not None:  # a retried acquire: the same lease, renewed
                    expires_at = now + timedelta(seconds=ttl)
                    curs.execute(t.extend, (expires_at, holder, ttl, mine.lease_id), prepare=True)
                    renewed = replace(mine, holder=holder, ttl_seconds=ttl, expires_at=expires_at)
                    return Grant(renewed, seats, leased, 0, granted=False)
                if leased >= seats:
                    earliest = min(x.expires_at for x in open_leases)
                    retry_after = max(earliest - now, timedelta(seconds=1))
                    raise NoSeatAvailable(seats, leased, retry_after)
                lease = SeatLease.grant(
                    uuid4(),
                    account_id=account_id,
                    product=product,
                    connection_id=connection_id,
                    holder=holder,
                    ttl_seconds=ttl,
                    now=now,
                )
                granted = Lease(
                    lease.id, account_id, product, connection_id, holder, ttl,
                    lease.granted_at, lease.expires_at,
                )  # fmt: skip
                curs.execute(
                    t.insert,
                    (granted.lease_id, account_id, product.value, connection_id, holder, ttl,
                     granted.granted_at, granted.expires_at),
                    prepare=True,
                )  # fmt: skip
                position = self.append(curs, insert, lease.collect_events())
            return Grant(granted, seats, leased + 1, position(), granted=True)

    def renew(self, holder: str, lease_ids: Sequence[UUID]) -> list[Renewal]:
        return self._on_live_view(self._renew, holder, lease_ids)

    def _renew(self, holder: str, lease_ids: Sequence[UUID]) -> list[Renewal]:
        """Extend each named lease of `holder` that is still live; the rest are lost. Where an
        account's seats shrank below its live leases, the newest beyond the seats are renewed
        but marked over the allowance. One statement (one round trip, its commit not waiting for
        the WAL flush) unless some account holds more leases than seats: those are ranked in a
        second, short read."""
        wanted = list(dict.fromkeys(lease_ids))
        statement = self.table.renew(self._allowance().table("entitlements"))
        with self.pipelined() as (conn, curs, _), conn.transaction():
            curs.execute(ASYNC_COMMIT)
            rows = curs.execute(statement, (self.now(), wanted, holder), prepare=True).fetchall()
        over: set[UUID] = set()
        crowded = list(
            dict.fromkeys((r["account_id"], r["product"]) for r in rows if r["live"] > r["seats"])
        )
        if crowded:
            with self.pipelined() as (conn, curs, other), conn.transaction():
                over = self._over_allowance(curs, other, crowded, rows[0]["now"])
        renewed = {r["lease_id"]: r["expires_at"] for r in rows}
        return [
            Renewal(lease_id, True, lease_id in over, renewed[lease_id])
            if lease_id in renewed
            else Renewal(lease_id, False)
            for lease_id in lease_ids
        ]

    def release(self, lease_id: UUID) -> Release:
        with self.pipelined() as (conn, curs, insert):
            with conn.transaction():
                row = curs.execute(self.table.release, (self.now(), lease_id), prepare=True)
                found = row.fetchone()
                if found is None:
                    return Release(False)
                account_id, product, at = found["account_id"], found["product"], found["now"]
                event = ending(lease_id, account_id, product, at, released=True)
                position = self.append(curs, insert, [event])
            return Release(True, position(), account_id)

    # -- reads -------------------------------------------------------------------------------

    def live(self, account_id: str, product: Product) -> list[Lease]:
        """The account's live leases, oldest first."""
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            rows = curs.execute(
                self.table.live, (account_id, product.value, self.now()), prepare=True
            ).fetchall()
        return [Lease.of(r) for r in rows]

    def leased(
        self, accounts: list[Account], now: datetime
    ) -> dict[Account, tuple[int, datetime | None]]:
        """Live leases per account at `now`, and when the first of them expires if not renewed."""
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            rows = curs.execute(
                self.table.counts,
                ([a for a, _ in accounts], [p for _, p in accounts], now),
                prepare=True,
            ).fetchall()
        return {(r["account_id"], r["product"]): (r["leased"], r["next_expiry"]) for r in rows}

    def _on_live_view(self, command: Callable[..., T], *args: Any) -> T:
        """Run `command`; if the allowance view's generation it read is gone (a rebuild switched
        and pruned it before this server heard), learn the live one and run it once more. The
        failed attempt rolled back: nothing was written."""
        try:
            return command(*args)
        except ProgrammingError:
            self._refresh()
            return command(*args)

    # -- inside a transaction ----------------------------------------------------------------

    @contextmanager
    def pipelined(self) -> Iterator[tuple[Connection[DictRow], Cursor[DictRow], Cursor[DictRow]]]:
        """A connection in pipeline mode and two cursors (statements; the events' insert): the
        statements go out together and the client waits only where it reads a result. The
        caller opens the transaction (`conn.transaction()`, which an exception rolls back) and
        reads the insert's ids after it, while the cursors are still open."""
        with (
            self._datastore.get_connection() as conn,
            conn.cursor() as curs,
            conn.cursor() as insert,
            conn.pipeline(),
        ):
            yield conn, curs, insert

    def _over_allowance(
        self,
        curs: Cursor[DictRow],
        other: Cursor[DictRow],
        accounts: list[Account],
        now: datetime,
    ) -> set[UUID]:
        """The renewed accounts' live leases beyond their seats (the newest), read in one round
        trip: the leases' query goes out with the entitlements' and is read after them."""
        curs.execute(
            self.table.live_of,
            ([a for a, _ in accounts], [p for _, p in accounts], now),
            prepare=True,
        )
        held, _ = self._allowance().entitlements_in(other, accounts, now)
        live: dict[Account, list[Held]] = {account: [] for account in accounts}
        for r in curs.fetchall():
            live[(r["account_id"], r["product"])].append(Held(r["lease_id"], r["granted_at"]))
        over: set[UUID] = set()
        for account, leases in live.items():
            seats = subscription_at(Product(account[1]), held[account], now).seats
            if len(leases) > seats:
                over |= over_allowance(leases, seats)
        return over

    def append(
        self, curs: Cursor[DictRow], insert: Cursor[DictRow], events: Sequence[Any]
    ) -> Callable[[], int]:
        """Queue the events' append in the open transaction; call the result for the position
        once the transaction is over (in pipeline mode the results come at its end)."""
        stored = [self._app.mapper.to_stored_event(e) for e in events]
        return self._app.store.append_in(curs, insert, stored)
