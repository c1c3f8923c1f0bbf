"""What ops and resellers read every morning, for the gRPC OpsService and the dashboard page alike:
key counts, activations per day, subscriptions about to end, and how far each view lags.

Callers decide who may see which reseller (the servicer and the page both scope a reseller's
token to its own reseller_id); these functions only read, from the live catalog generation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

from license_svc.domain.tiers import Product
from projections.catalog import CatalogKey, CatalogView, KeyPage
from projections.catalog_stats import DayRange, KeyStats, key_stats

from .live import LiveViews

STATS_DAYS = 90  # activations per day: the default range ends today and spans this many days
MAX_STATS_DAYS = 5 * 366
EXPIRING_WINDOW = timedelta(days=30)


def default_days(today: date, first: date | None = None, last: date | None = None) -> DayRange:
    """The range asked for, each missing end filled in: the last STATS_DAYS days up to today."""
    span = timedelta(days=STATS_DAYS - 1)
    last = last or (_shifted(first, span) if first else today)
    first = first or _shifted(last, -span)
    return DayRange(first, last)


def _shifted(day: date, by: timedelta) -> date:
    """`day + by`, stopped at the calendar's ends (a range near year 1 or 9999 is still one)."""
    try:
        return day + by
    except OverflowError:
        return date.max if by > timedelta(0) else date.min


def stats(
    views: LiveViews,
    *,
    reseller_id: str,
    product: Product | None,
    now: datetime,
    days: DayRange,
    min_position: int = 0,
    timeout: float = 0.0,
) -> KeyStats:
    def query(view: CatalogView) -> tuple[KeyStats, int]:
        found = key_stats(view, reseller_id, product, now, days)
        return found, found.position

    found, _ = views.read(CatalogView, min_position, timeout, query)
    return found


@dataclass(frozen=True)
class ExpiringPage:
    keys: list[CatalogKey]
    more: bool  # another page follows the last key of this one
    position: int


def expiring(
    views: LiveViews,
    *,
    now: datetime,
    before: datetime,
    reseller_id: str,
    after: tuple[datetime, UUID] | None,
    size: int,
) -> ExpiringPage:
    """One page of subscriptions that run at `now` and end before `before`."""

    def query(view: CatalogView) -> tuple[KeyPage, int]:
        page = view.expiring(now, before, reseller_id, after, size + 1)  # one more: a next page?
        return page, page.position

    page, position = views.read(CatalogView, 0, 0.0, query)
    return ExpiringPage(page.keys[:size], len(page.keys) > size, position)


@dataclass(frozen=True)
class Lag:
    name: str
    position: int
    head: int

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


def lags(views: LiveViews, head_position: Callable[[], int | None]) -> list[Lag]:
    """Each view's position against the store's head. Positions are read first, so a lag is
    never negative."""
    positions = views.status()
    head = head_position() or 0
    return [Lag(name, position, head) for name, position in positions]
