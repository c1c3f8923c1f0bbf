"""The read-time rules of rules §3 and §6, pure: what an account's entitlements add up to *now*.

- An entitlement counts only while `period_starts_at <= now < period_ends_at`: a period that
  has ended is never counted, whether or not the sweeper has recorded SubscriptionExpired.
- Keys stack: seats add up, the highest tier wins, and that tier's limits come from the one
  catalog (`license_svc.domain.tiers`).
- `valid_until` is the next instant the answer changes by itself: the earliest end of a counted
  entitlement (or start of a future one). None when nothing will change without a new event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from license_svc.domain.tiers import Product, Tier, TierLimits, highest, limits

SOURCE_KEY, SOURCE_PLAN = "key", "plan"


@dataclass(frozen=True)
class Entitlement:
    key_id: UUID
    account_id: str
    product: Product
    tier: Tier
    seats: int
    period_starts_at: datetime
    period_ends_at: datetime
    hint: str = ""
    source: str = SOURCE_KEY
    subscription_id: str = ""  # plans: the payment provider's subscription id


@dataclass(frozen=True)
class Subscription:
    product: Product
    entitlements: tuple[Entitlement, ...]  # the counted ones, oldest first
    valid_until: datetime | None
    # Seat leases (rules §12), filled in by the read side from the lease table: the live leases
    # at the answer's instant, and when the first of them expires unless renewed (the answer
    # may change then with no event, but that is no `valid_until`: a renewal moves it).
    seats_leased: int = 0
    leases_until: datetime | None = None

    @property
    def holds_until(self) -> datetime | None:
        """Until when this answer holds with no event (a cache keeps it that long)."""
        ends = [t for t in (self.valid_until, self.leases_until) if t is not None]
        return min(ends) if ends else None

    @property
    def active(self) -> bool:
        return bool(self.entitlements)

    @property
    def seats(self) -> int:
        return sum(e.seats for e in self.entitlements)

    @property
    def tier(self) -> Tier | None:
        return highest([e.tier for e in self.entitlements], self.product)

    @property
    def limits(self) -> TierLimits | None:
        tier = self.tier
        return limits(self.product, tier) if tier is not None else None

    def allows(self, connections_in_use: int) -> bool:
        return self.active and connections_in_use < self.seats

    def remaining(self, connections_in_use: int) -> int:
        return max(0, self.seats - connections_in_use)


def subscription_at(
    product: Product, entitlements: Iterable[Entitlement], now: datetime
) -> Subscription:
    counted: list[Entitlement] = []
    changes: list[datetime] = []
    for entitlement in entitlements:
        if entitlement.period_ends_at <= now:
            continue
        if entitlement.period_starts_at > now:
            changes.append(entitlement.period_starts_at)
            continue
        counted.append(entitlement)
        changes.append(entitlement.period_ends_at)
    counted.sort(key=lambda e: (e.period_starts_at, str(e.key_id)))
    return Subscription(product, tuple(counted), min(changes) if changes else None)
