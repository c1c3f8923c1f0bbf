"""The expiry sweeper: appends SubscriptionExpired for keys whose period has ended.

It finds due keys in the key catalog view and asks the application to expire each one. Several
sweepers may run at once (one per replica): `LicensingApp.expire` appends through the store's
optimistic concurrency, so of two sweepers expiring one key exactly one appends and the other
reloads, sees it expired and appends nothing. The catalog lags the store a little, so a key
just expired may be offered again; expiring it again is a no-op.

Reads never wait for the sweeper: an ended period is not counted whatever it has done.

A key (or plan) whose expiry fails for a reason of its own (an event that does not decode, a
bug) is logged and skipped, so one bad key cannot stop every other key from expiring; a
database fault still ends the sweep (the next one retries it all).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError

from license_svc.keys.app import LicensingApp

log = logging.getLogger("license_svc.keys.sweeper")
# The database is away (or overloaded): the sweep stops and is retried, no key is skipped.
FAULTS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


class DueKey(Protocol):
    @property
    def key_id(self) -> UUID: ...

    @property
    def period_ends_at(self) -> datetime | None: ...


class KeyCatalog(Protocol):
    """The key catalog view as the sweeper reads it (`projections.catalog.CatalogView`)."""

    def due(
        self, now: datetime, after: tuple[datetime, UUID] | None, limit: int
    ) -> Sequence[DueKey]: ...


class PlanExpiry(Protocol):
    """Plans bought online (`license_svc.plans.book.PlanBook`)."""

    def expire(self, plan_id: UUID) -> object | None: ...


class DuePlans(Protocol):
    """A view that lists plans whose end has passed (`projections.entitlements`)."""

    def due_plans(self, now: datetime, limit: int) -> Sequence[UUID]: ...


@dataclass(frozen=True)
class Sweep:
    due: int  # keys the catalog offered as due
    expired: int  # SubscriptionExpired events this sweeper appended
    failed: int = 0  # keys (and plans) skipped because their expiry failed on their own


def _expire_one(expire: Callable[[UUID], object | None], key_id: UUID) -> bool | None:
    """Whether this expiry appended; None when it failed on its own (logged, skipped)."""
    try:
        return expire(key_id) is not None
    except FAULTS:
        raise
    except Exception as error:
        log.error("sweep: skipping %s, its expiry failed: %s", key_id, error, exc_info=error)
        return None


class Sweeper:
    def __init__(
        self,
        app: LicensingApp,
        catalog: Callable[[], KeyCatalog],
        clock: Callable[[], datetime],
        batch: int = 500,
        plans: tuple[PlanExpiry, Callable[[], DuePlans]] | None = None,
    ) -> None:
        self._app = app
        self._catalog = catalog
        self._clock = clock
        self._batch = batch
        self._plans = plans  # plans bought online: their book and a view that lists them

    def sweep_once(self) -> Sweep:
        keys = self._sweep_keys()
        plans = self._sweep_plans()
        return Sweep(keys.due + plans.due, keys.expired + plans.expired, keys.failed + plans.failed)

    def _sweep_plans(self) -> Sweep:
        """Plans whose end has passed; the view drops each once its expiry is applied, and a
        plan offered again (the view lags) expires as a no-op."""
        if self._plans is None:
            return Sweep(0, 0)
        book, view = self._plans
        due = view().due_plans(self._clock(), self._batch)
        done = [_expire_one(book.expire, plan_id) for plan_id in due]
        return Sweep(len(due), done.count(True), done.count(None))

    def _sweep_keys(self) -> Sweep:
        """Expire every key that is due now; page through the catalog by (end, key id)."""
        now = self._clock()
        after: tuple[datetime, UUID] | None = None
        due = expired = failed = 0
        while True:
            page = self._catalog().due(now, after, self._batch)
            for key in page:
                due += 1
                done = _expire_one(self._app.expire, key.key_id)
                expired += done is True
                failed += done is None
            if len(page) < self._batch:
                return Sweep(due, expired, failed)
            last = page[-1]
            assert last.period_ends_at is not None
            after = (last.period_ends_at, last.key_id)

    def sweep_and_log(self) -> None:
        """One sweep, its expiries logged (the task `bootstrap` runs periodically)."""
        sweep = self.sweep_once()
        if sweep.expired:
            log.info("expired %d of %d due keys", sweep.expired, sweep.due)
