"""The read side as servers see it: each view's live generation, and reads that wait.

`LiveViews.read(name, min_position, timeout, query)` runs `query` against the live generation
of a view; if the answer's position is below `min_position` it waits (woken by `Notices`) and
reads again, until the deadline, then raises `WaitTimedOut`. Reads use the server's own pool;
only the notice listener holds a connection of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Protocol, TypeVar

from eventsourcing.persistence import ProgrammingError
from eventsourcing.postgres import PostgresDatastore

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
    ) -> None:
        self.datastore = datastore
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
        while True:
            generation = self.live_generation(name)
            view = self.view(name)
            assert isinstance(view, cls)
            try:
                answer, position = query(view)
            except ProgrammingError:
                # A switch this server has not heard of (its listener was reconnecting) and
                # the old generation already pruned: read the live generation again.
                self.refresh()
                if self.live_generation(name) == generation:
                    raise
                continue
            if position >= min_position:
                return answer, position
            self.notices.observe(view.full_name, position)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimedOut(
                    f"The {name} view has not reached position {min_position} in time"
                    f" (it is at {position}); retry later"
                )
            full_name = generation_name(name, generation)

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
