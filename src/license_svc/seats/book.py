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

Acquires and releases that wait at the same moment share that transaction (a group, as the
store's appends: `adapters.groupcommit`): it takes the lock of every account the group touches,
in the order of the lock numbers on every replica (so groups never wait for each other in a
circle), and decides each command in turn on what the ones before it left — releases first, then
acquires in arrival order. The count of an account still sees every lease committed before its
lock was taken, plus the group's own grants so far; the argument above holds command by command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast
from uuid import UUID, uuid4

from eventsourcing.persistence import ProgrammingError
from eventsourcing.postgres import PostgresDatastore
from psycopg import Connection, Cursor
from psycopg.rows import DictRow, tuple_row

from license_svc.adapters.application import EventStore
from license_svc.adapters.clock import Clock, utcnow
from license_svc.adapters.groupcommit import MAX_GROUP, Batcher, Job
from license_svc.adapters.pools import LoopPool
from license_svc.domain.seats import (
    Held,
    NoActiveSubscription,
    NoSeatAvailable,
    SeatLease,
    ending,
    over_allowance,
)
from license_svc.domain.subscription import Entitlement, subscription_at
from license_svc.domain.tiers import Product

from .answers import Account, AllowanceRows, Grant, Lease, Release, Renewal
from .table import LeaseTable

T = TypeVar("T")
# A heartbeat does not wait for its WAL flush (as the limiter's reservations; `LeaseTable.renew`
# says so in its statement): a crash of the database can lose the last fraction of a second of
# renewals, which only moves those leases' expires_at back to the renewal before — still ahead,
# with heartbeats at a third of the TTL. The limit never depends on it: acquires and releases
# commit synchronously.


class SeatBook:
    def __init__(
        self,
        app: EventStore,
        allowance: Callable[[], AllowanceRows],
        clock: Clock | None = None,
        refresh: Callable[[], None] = lambda: None,
        loop_pool: LoopPool | None = None,
    ) -> None:
        """`allowance`: the allowance view's live generation; `refresh` re-reads which one that
        is (a rebuild may have switched and dropped the old one unheard). `clock=None`: the
        database's clock (production); a test passes its own."""
        self._app = app
        self._allowance = allowance
        self._clock = clock
        self._refresh = refresh
        self._loop_pool = loop_pool  # heartbeats from coroutines, on the event loop
        datastore: PostgresDatastore = app.store.datastore
        self._datastore = datastore
        self.table = LeaseTable(datastore.schema or "public")
        # Acquires and releases that wait at the same moment share one transaction; with the
        # store's group commit off, each is a transaction of its own.
        grouped = app.store.group_commit is not None
        self._commands = Batcher[_Command](self._write_group, MAX_GROUP if grouped else 1)
        # The groups of coroutines' commands are written here (one group at a time: one thread).
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="seat-writer")

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
        job = _Acquiring(account_id, product, connection_id, holder, ttl)
        return cast(Grant, self._on_live_view(self._submit, job))

    def release(self, lease_id: UUID) -> Release:
        return cast(Release, self._on_live_view(self._submit, _Releasing(lease_id)))

    def _submit(self, job: _Command) -> Grant | Release:
        """Run one acquire or release in the next group (at once if none is being written)."""
        return self._commands.submit(job).outcome()

    # The server's way: the caller waits on the event loop, holding no thread, and the groups
    # are written on one writer thread. Every waiting call joins the next group, however many.

    async def acquire_async(
        self, account_id: str, product: Product, connection_id: str, holder: str, ttl: int
    ) -> Grant:
        make = partial(_Acquiring, account_id, product, connection_id, holder, ttl)
        return cast(Grant, await self._on_live_view_async(make))

    async def release_async(self, lease_id: UUID) -> Release:
        return cast(Release, await self._on_live_view_async(partial(_Releasing, lease_id)))

    async def _on_live_view_async(self, make: Callable[[], _Command]) -> Grant | Release:
        """`_on_live_view` for a coroutine (the refresh is one short read: on the writer)."""
        try:
            return (await self._commands.submit_async(make(), self._writer)).outcome()
        except ProgrammingError:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._refresh)
            return (await self._commands.submit_async(make(), self._writer)).outcome()

    def close(self) -> None:
        """Stop the writer thread and close the heartbeats' connections (after the server
        stopped taking calls; the server closes those while its loop still runs)."""
        self._writer.shutdown(wait=True)
        self.close_loop_pool()

    def close_loop_pool(self) -> None:
        if self._loop_pool is not None:
            self._loop_pool.close()

    def _write_group(self, jobs: list[_Command]) -> None:
        """One transaction for a group of acquires and releases, in two round trips: the locks
        of every account they touch (in one order), the releases, the lapsed leases ended, the
        open leases and the entitlements; then the new lease rows, the retried ones' renewals
        and every event, and COMMIT. Each command is decided as if alone, releases first, then
        acquires in the order they came; a refusal is that command's answer only."""
        acquires = [j for j in jobs if isinstance(j, _Acquiring)]
        releases = [j for j in jobs if isinstance(j, _Releasing)]
        accounts = list(dict.fromkeys(j.account for j in acquires))
        # Entitlements that ended a day before the clock reads cannot count at the database's
        # time under the lock; the rule in `subscription_at` drops any other ended one exactly.
        since = (self.now() or utcnow()) - timedelta(days=1)
        with self.pipelined() as (conn, curs, insert):
            with conn.transaction():
                curs.execute(
                    self.table.group,
                    (self.now(), [a for a, _ in accounts], [p for _, p in accounts],
                     [j.lease_id for j in releases]),
                    prepare=True,
                )  # fmt: skip
                held: dict[Account, list[Entitlement]] = {}
                if accounts:
                    held, _ = self._allowance().entitlements_in(insert, accounts, since)
                rows = curs.fetchall()
                decided = _Decisions(rows[-1]["at_now"], rows, held)
                for releasing in releases:
                    decided.release(releasing)
                for acquiring in acquires:
                    decided.acquire(acquiring)
                t = self.table
                if decided.granted:
                    columns = zip(*(_row(x) for x in decided.granted.values()), strict=True)
                    curs.execute(t.insert, [list(c) for c in columns], prepare=True)
                if decided.renewed:
                    leases = list(decided.renewed.values())
                    curs.execute(
                        t.extend,
                        ([x.lease_id for x in leases], [x.expires_at for x in leases],
                         [x.holder for x in leases], [x.ttl_seconds for x in leases]),
                        prepare=True,
                    )  # fmt: skip
                ids: Callable[[], Sequence[int]] = list
                if decided.events:
                    ids = self.append(curs, insert, [e for _, e in decided.events])
            positions = ids()
        for (command, _), position in zip(decided.events, positions, strict=True):
            command.position = position
        for command in jobs:
            command.settle()

    def renew(self, holder: str, lease_ids: Sequence[UUID | str]) -> list[Renewal]:
        """`lease_ids`: UUIDs, or their canonical text (lower-case, hyphenated), as the server
        passes them on without parsing a hundred UUIDs per heartbeat."""
        return self._on_live_view(self._renew, holder, lease_ids)

    def _renew(self, holder: str, lease_ids: Sequence[UUID | str]) -> list[Renewal]:
        """Extend each named lease of `holder` that is still live; the rest are lost. Where an
        account's seats shrank below its live leases, the newest beyond the seats are renewed
        but marked over the allowance. One statement (one round trip, its commit not waiting for
        the WAL flush) unless some account holds more leases than seats: those are ranked in a
        second, short read. The ids go out as one text and come back as text, in plain tuples:
        a heartbeat of 100 leases makes no UUID, no dict and no array element in Python."""
        with (
            self._datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as tuples,
        ):
            rows = tuples.execute(*self._renewal(holder, lease_ids), prepare=True).fetchall()
        crowded = _crowded(rows)
        return _renewals(lease_ids, rows, self._over(crowded, rows) if crowded else set())

    async def renew_async(self, holder: str, lease_ids: Sequence[UUID | str]) -> list[Renewal]:
        """`renew` for a coroutine: the statement runs on the caller's event loop, on the
        `LoopPool` (no thread taken, no hop to one and back); the rare second read of a crowded
        account runs on the loop's default executor. Without a loop pool: `renew` on it."""
        loop = asyncio.get_running_loop()
        if self._loop_pool is None:
            return await loop.run_in_executor(None, self.renew, holder, lease_ids)
        try:
            rows = await self._renew_on_loop(self._loop_pool, holder, lease_ids)
        except ProgrammingError:  # the allowance view's generation is gone: learn the live one
            await loop.run_in_executor(None, self._refresh)
            rows = await self._renew_on_loop(self._loop_pool, holder, lease_ids)
        crowded = _crowded(rows)
        over = await loop.run_in_executor(None, self._over, crowded, rows) if crowded else set()
        return _renewals(lease_ids, rows, over)

    async def _renew_on_loop(
        self, pool: LoopPool, holder: str, lease_ids: Sequence[UUID | str]
    ) -> list[tuple[Any, ...]]:
        async with pool.connection() as conn, conn.cursor(row_factory=tuple_row) as tuples:
            await tuples.execute(*self._renewal(holder, lease_ids), prepare=True)
            return await tuples.fetchall()

    def _renewal(
        self, holder: str, lease_ids: Sequence[UUID | str]
    ) -> tuple[bytes, tuple[datetime | None, str, str]]:
        """The heartbeat's statement and its parameters (each id once)."""
        wanted = ",".join(dict.fromkeys(map(str, lease_ids)))
        return self.table.renew(self._allowance().table("entitlements")), (
            self.now(),
            wanted,
            holder,
        )

    def _over(self, crowded: list[Account], rows: list[tuple[Any, ...]]) -> set[str]:
        """The leases of crowded accounts renewed beyond their seats (the newest), by id."""
        now = next(r[3] for r in rows if r[3] is not None)
        with self.pipelined() as (conn, curs, other), conn.transaction():
            return {str(i) for i in self._over_allowance(curs, other, crowded, now)}

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
    ) -> Callable[[], Sequence[int]]:
        """Queue the events' append in the open transaction; call the result for their
        positions once the transaction is over (in pipeline mode the results come at its end)."""
        stored = [self._app.mapper.to_stored_event(e) for e in events]
        return self._app.store.append_in(curs, insert, stored)


# -- a group's commands ------------------------------------------------------------------------


class _Command(Job[Grant | Release]):
    def __init__(self) -> None:
        super().__init__()
        self.position = 0  # of its event, once committed (none: 0)

    def settle(self) -> None:
        """Called once the group committed: the answer takes its event's position."""


class _Acquiring(_Command):
    def __init__(
        self, account_id: str, product: Product, connection_id: str, holder: str, ttl: int
    ) -> None:
        super().__init__()
        self.account_id, self.product = account_id, product
        self.account: Account = (account_id, product.value)
        self.connection_id, self.holder, self.ttl = connection_id, holder, ttl
        # Decided, not yet committed: a failed group leaves the command unsettled, and the
        # group's error is its answer.
        self.grant: Grant | None = None
        self.refused: Exception | None = None

    def settle(self) -> None:
        if self.refused is not None:
            self.error = self.refused
        elif self.grant is not None:
            self.answer = replace(self.grant, position=self.position)


class _Releasing(_Command):
    def __init__(self, lease_id: UUID) -> None:
        super().__init__()
        self.lease_id = lease_id
        self.account_id: str | None = None  # the released lease's, if it was live

    def settle(self) -> None:
        if self.account_id is None:
            self.answer = Release(False)
        else:
            self.answer = Release(True, self.position, self.account_id)


class _Decisions:
    """A group's commands decided one after another on what the first round trip read: each
    sees the leases the ones before it granted or released."""

    def __init__(
        self, now: datetime, rows: list[DictRow], held: dict[Account, list[Entitlement]]
    ) -> None:
        self.now = now
        self.held = held
        self.released: dict[UUID, DictRow] = {}
        self.open: dict[Account, list[Lease]] = {account: [] for account in held}
        for r in rows:
            if r["kind"] == "released":
                self.released[r["lease_id"]] = r
            elif r["kind"] == "open":
                self.open[(r["account_id"], r["product"])].append(Lease.of(r))
        self.granted: dict[UUID, Lease] = {}  # rows to insert
        self.renewed: dict[UUID, Lease] = {}  # stored rows a retried acquire renews
        self.events: list[tuple[_Command, Any]] = []

    def release(self, job: _Releasing) -> None:
        row = self.released.pop(job.lease_id, None)  # a lease named twice ends once
        if row is not None:
            job.account_id = row["account_id"]
            event = ending(job.lease_id, row["account_id"], row["product"], self.now, released=True)
            self.events.append((job, event))

    def acquire(self, job: _Acquiring) -> None:
        now, leases = self.now, self.open[job.account]
        try:
            subscription = subscription_at(job.product, self.held[job.account], now)
            if not subscription.active:
                raise NoActiveSubscription(job.product)
            seats, leased = subscription.seats, len(leases)
            mine = next(
                (i for i, x in enumerate(leases) if x.connection_id == job.connection_id), None
            )
            if mine is not None:  # a retried acquire: the same lease, renewed
                renewed = replace(
                    leases[mine],
                    holder=job.holder,
                    ttl_seconds=job.ttl,
                    expires_at=now + timedelta(seconds=job.ttl),
                )
                leases[mine] = renewed
                if renewed.lease_id in self.granted:  # granted earlier in this group
                    self.granted[renewed.lease_id] = renewed
                else:
                    self.renewed[renewed.lease_id] = renewed
                job.grant = Grant(renewed, seats, leased, 0, granted=False)
                return
            if leased >= seats:
                earliest = min(x.expires_at for x in leases)
                raise NoSeatAvailable(seats, leased, max(earliest - now, timedelta(seconds=1)))
        except (NoActiveSubscription, NoSeatAvailable) as refused:
            job.refused = refused
            return
        lease = SeatLease.grant(
            uuid4(),
            account_id=job.account_id,
            product=job.product,
            connection_id=job.connection_id,
            holder=job.holder,
            ttl_seconds=job.ttl,
            now=now,
        )
        granted = Lease(
            lease.id, job.account_id, job.product, job.connection_id, job.holder, job.ttl,
            lease.granted_at, lease.expires_at,
        )  # fmt: skip
        leases.append(granted)
        self.granted[granted.lease_id] = granted
        job.grant = Grant(granted, seats, leased + 1, 0, granted=True)
        self.events.extend((job, e) for e in lease.collect_events())


def _row(lease: Lease) -> tuple[Any, ...]:
    return (
        lease.lease_id, lease.account_id, lease.product.value, lease.connection_id,
        lease.holder, lease.ttl_seconds, lease.granted_at, lease.expires_at,
    )  # fmt: skip


# A heartbeat's row: (expires_at, account_id, product, now, the ids renewed to that expires_at
# joined by commas); account, product and now only where the account holds more live leases
# than seats (`LeaseTable.renew`).


def _crowded(rows: list[tuple[Any, ...]]) -> list[Account]:
    """The renewed accounts holding more live leases than seats (each once)."""
    return list(dict.fromkeys((r[1], r[2]) for r in rows if r[1] is not None))


def _renewals(
    lease_ids: Sequence[UUID | str], rows: list[tuple[Any, ...]], over: set[str]
) -> list[Renewal]:
    """Each named lease's answer, in the order named: renewed (perhaps over the allowance)
    with its new expires_at, or lost."""
    renewed: dict[str, datetime] = {}
    for row in rows:
        renewed.update(dict.fromkeys(row[4].split(","), row[0]))
    answers = []
    for lease_id in lease_ids:
        key = str(lease_id)
        expires_at = renewed.get(key)
        answers.append(
            Renewal(lease_id, False)
            if expires_at is None
            else Renewal(lease_id, True, key in over, expires_at)
        )
    return answers
