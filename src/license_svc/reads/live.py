"""The read side as servers see it: each view's live generation, and reads that wait.

`LiveViews.read(name, min_position, timeout, query)` runs `query` against the live generation
of a view; if the answer's position is below `min_position` it waits (woken by `Notices`) and
reads again, until the deadline, then raises `WaitTimedOut`. Reads use the server's own pool;
only the notice listener holds a connection of its own.

With a `read_datastore` (a standby: `LICENSE_SVC_READ_DATABASE_URL`) `read` queries the
standby's copy of the view. Its position is the standby's replicated tracking row, read in the
same snapshot as the answer, so a `min_position` read is never answered from before that
position: while the notices (heard on the primary) say the view has reached it and the standby
has not replayed it yet, the read polls the standby every `REPLICA_POLL_SECONDS`, for at most
`STANDBY_PATIENCE` (half the call's time at most), then reads the primary: a standby whose
replay is paused or far behind costs a read that wait, never its answer. A read the standby
fails (down, reconnecting, a view generation not replicated yet, a query cancelled by replay)
is read on the primary instead: the standby spreads load, it is not needed for an answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Protocol, TypeVar

import psycopg
from eventsourcing.persistence import PersistenceError, ProgrammingError
from eventsourcing.postgres import PostgresDatastore
from psycopg_pool import PoolTimeout

from license_svc.domain.subscription import Subscription
from projections.allowance import AllowanceView
from projections.base import View, generation_name
from projections.catalog import CatalogView
from projections.generations import Generations
from projections.registry import NAMES, view_class

from .cache import AccountCache
from .notices import Notices

T = TypeVar("T")
V = TypeVar("V", bound=View)
# How often a min_position read polls a standby that has not replayed the position yet.
REPLICA_POLL_SECONDS = 0.01
# How long a min_position read waits for a standby behind the primary before reading the primary.
STANDBY_PATIENCE = 1.0
# What a read on the standby may fail with; then it is read on the primary.
STANDBY_FAILURES = (PersistenceError, psycopg.Error, PoolTimeout)


class LeaseCounts(Protocol):
    """Live seat leases per (account_id, product value) at `now`, with the first one's expiry
    (`license_svc.seats.book.SeatBook`, wired by the composition root)."""

    def leased(
        self, accounts: list[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], tuple[int, datetime | None]]: ...


class WaitTimedOut(Exception):
    """A read asked for a position the view did not reach within the call's deadline."""


class LiveViews:
    def __init__(
        self,
        datastore: PostgresDatastore,
        conninfo: str,
        recheck_seconds: float,
        cache_entries: int = 0,
        read_datastore: PostgresDatastore | None = None,
    ) -> None:
        self.datastore = datastore
        self.read_datastore = read_datastore
        self.standby_fallbacks = 0  # reads the standby failed and the primary answered
        self.generations = Generations(datastore)
        self._recheck = recheck_seconds
        self._live: dict[str, int] = {}
        self._views: dict[tuple[str, int], View] = {}
        self._lock = threading.Lock()
        self.notices = Notices(conninfo, self._switched, self.refresh)
        # Account answers (allowance, summary) kept while the notices say they are current.
        self.cache: AccountCache[object] = AccountCache(cache_entries)
        self.notices.subscribe(self.cache)
        self.leases: LeaseCounts | None = None  # seat leases, when the server has them

    def with_leases(
        self, answers: dict[tuple[str, str], Subscription], now: datetime
    ) -> dict[tuple[str, str], Subscription]:
        """The answers with their live seat leases at `now` (one statement for them all)."""
        if self.leases is None or not answers:
            return answers
        counts = self.leases.leased(list(answers), now)
        return {
            account: replace(
                found, seats_leased=counts[account][0], leases_until=counts[account][1]
            )
            if account in counts
            else found
            for account, found in answers.items()
        }

    def ensure_tables(self, create: bool = True) -> None:
        """Create the bookkeeping table and the live generations' tables (idempotent); without
        `create` (a role that may run no DDL: `migrate` made them) only learn the live ones."""
        if create:
            self.generations.create_table()
        self.refresh()
        if create:
            for name in NAMES:
                self.view(name).create_table()

    def refresh(self) -> None:
        live = self.generations.live(NAMES)
        with self._lock:
            self._live.update(live)

    def _switched(self, name: str, generation: int) -> None:
        with self._lock:
            self._live[name] = max(generation, self._live.get(name, 0))

    def live_generation(self, name: str) -> int:
        with self._lock:
            generation = self._live.get(name)
        if generation is None:
            self.refresh()
            with self._lock:
                generation = self._live[name]
        return generation

    def view(self, name: str) -> View:
        generation = self.live_generation(name)
        key = (name, generation)
        with self._lock:
            found = self._views.get(key)
            if found is None:
                found = self._views[key] = view_class(name).at(self.datastore, generation)
        return found

    def standby_view(self, name: str) -> View | None:
        """The live generation of view `name` on the read datastore (None: there is none)."""
        if self.read_datastore is None:
            return None
        generation = self.live_generation(name)
        key = (f"{name}@standby", generation)
        with self._lock:
            found = self._views.get(key)
            if found is None:
                found = self._views[key] = view_class(name).at(self.read_datastore, generation)
        return found

    def _query(
        self, name: str, cls: type[V], query: Callable[[V], tuple[T, int]], standby_ok: bool
    ) -> tuple[T, int]:
        standby = self.standby_view(name) if standby_ok else None
        if standby is not None:
            assert isinstance(standby, cls)
            try:
                return query(standby)
            except STANDBY_FAILURES:
                with self._lock:
                    self.standby_fallbacks += 1
        view = self.view(name)
        assert isinstance(view, cls)
        return query(view)

    @property
    def allowance(self) -> AllowanceView:
        view = self.view(AllowanceView.name)
        assert isinstance(view, AllowanceView)
        return view

    @property
    def catalog(self) -> CatalogView:
        view = self.view(CatalogView.name)
        assert isinstance(view, CatalogView)
        return view

    def read(
        self,
        cls: type[V],
        min_position: int,
        timeout: float,
        query: Callable[[V], tuple[T, int]],
    ) -> tuple[T, int]:
        """`query` (→ answer, position) on the live view, once it has reached `min_position`."""
        name = cls.name
        if min_position > 0:
            self.notices.start()
        deadline = time.monotonic() + timeout
        standby_until = time.monotonic() + min(STANDBY_PATIENCE, timeout / 2)
        standby_ok = True
        while True:
            generation = self.live_generation(name)
            try:
                answer, position = self._query(name, cls, query, standby_ok)
            except ProgrammingError:
                # A switch this server has not heard of (its listener was reconnecting) and
                # the old generation already pruned: read the live generation again.
                self.refresh()
                if self.live_generation(name) == generation:
                    raise
                continue
            if position >= min_position:
                return answer, position
            full_name = generation_name(name, generation)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimedOut(
                    f"The {name} view has not reached position {min_position} in time"
                    f" (it is at {position}); retry later"
                )
            if (
                standby_ok
                and self.read_datastore is not None
                and self.notices.heard(full_name) >= min_position
            ):
                # The primary's view has it; the standby has not replayed it yet.
                if time.monotonic() >= standby_until:
                    standby_ok = False  # waited long enough: the primary answers
                    with self._lock:
                        self.standby_fallbacks += 1
                else:
                    time.sleep(min(remaining, REPLICA_POLL_SECONDS))
                continue
            self.notices.observe(full_name, position)

            def ready(full_name: str = full_name, generation: int = generation) -> bool:
                return (
                    self.notices.heard(full_name) >= min_position
                    or self.live_generation(name) != generation
                )

            if not self.notices.wait(ready, min(remaining, self._recheck)):
                self.refresh()  # woken by the clock: a switch notice may have been missed

    def status(self) -> list[tuple[str, int]]:
        return [(name, self.view(name).position()) for name in NAMES]

    def start(self) -> None:
        self.notices.start()

    def close(self) -> None:
        self.notices.stop()
        if self.read_datastore is not None:
            self.read_datastore.close()
