"""Seat leases (rules §12): the SeatLease aggregate, its three events and the read-time rules.

A lease is granted once (`SeatLeaseGranted`, version 1) and ends at most once: released by its
holder (`SeatLeaseReleased`) or expired (`SeatLeaseExpired`, recorded afterwards by the sweeper at
the lease's `expires_at`). Both endings are version 2, so the store's (originator_id,
originator_version) constraint lets exactly one of them be recorded, however many sweepers and
releases race. Renewals are not events: a lease's current `expires_at` lives in the lease table.

The rules here are pure; the capability (`license_svc.seats`) applies them inside the one
transaction that holds the account's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from license_svc.domain.tiers import Product

DEFAULT_TTL_SECONDS = 60
TTL_SECONDS = range(10, 3_601)  # allowed ttl_seconds (0 asks for the default)
MAX_RENEWALS = 1_000  # leases one RenewSeats call may name
ENDING_VERSION = 2  # a lease's one ending: released or expired, never both


class NoActiveSubscription(Exception):
    def __init__(self, product: Product) -> None:
        super().__init__(f"No active {product.display} subscription")


class NoSeatAvailable(Exception):
    def __init__(self, seats: int, seats_leased: int, retry_after: timedelta) -> None:
        super().__init__(f"All {seats} seats are in use")
        self.seats = seats
        self.seats_leased = seats_leased
        self.retry_after = retry_after


class SeatLease(Aggregate):
    class SeatLeaseGranted(Aggregate.Created):
        account_id: str
        product: str
        connection_id: str
        holder: str
        ttl_seconds: int
        granted_at: datetime
        expires_at: datetime

    # Who and what repeat in the endings, so a view can apply either one alone.
    class SeatLeaseReleased(Aggregate.Event):
        account_id: str
        product: str
        released_at: datetime

    class SeatLeaseExpired(Aggregate.Event):
        account_id: str
        product: str
        expired_at: datetime  # the lease's last expires_at: when its seat became free

    @event(SeatLeaseGranted)
    def __init__(
        self,
        account_id: str,
        product: str,
        connection_id: str,
        holder: str,
        ttl_seconds: int,
        granted_at: datetime,
        expires_at: datetime,
    ) -> None:
        self.account_id = account_id
        self.product = Product(product)
        self.connection_id = connection_id
        self.holder = holder
        self.ttl_seconds = ttl_seconds
        self.granted_at = granted_at
        self.expires_at = expires_at
        self.ended_at: datetime | None = None

    @classmethod
    def grant(
        cls,
        lease_id: UUID,
        *,
        account_id: str,
        product: Product,
        connection_id: str,
        holder: str,
        ttl_seconds: int,
        now: datetime,
    ) -> SeatLease:
        return cls._create(
            cls.SeatLeaseGranted,
            id=lease_id,
            account_id=account_id,
            product=product.value,
            connection_id=connection_id,
            holder=holder,
            ttl_seconds=ttl_seconds,
            granted_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )

    @event(SeatLeaseReleased)
    def _released(self, account_id: str, product: str, released_at: datetime) -> None:
        self.ended_at = released_at

    @event(SeatLeaseExpired)
    def _expired(self, account_id: str, product: str, expired_at: datetime) -> None:
        self.ended_at = expired_at


# Every lease event names its account and product (a view applies each one alone).
LeaseEvent = SeatLease.SeatLeaseGranted | SeatLease.SeatLeaseReleased | SeatLease.SeatLeaseExpired


def ending(
    lease_id: UUID, account_id: str, product: str, at: datetime, *, released: bool
) -> SeatLease.Event:
    """The lease's ending event, built without loading the lease: a lease's history is its grant
    and at most one ending, so the ending is always version ENDING_VERSION (and the store refuses a
    second one)."""
    common: dict[str, Any] = {
        "originator_id": lease_id,
        "originator_version": ENDING_VERSION,
        "timestamp": at,
        "account_id": account_id,
        "product": product,
    }
    if released:
        return SeatLease.SeatLeaseReleased(**{**common, "released_at": at})
    return SeatLease.SeatLeaseExpired(**{**common, "expired_at": at})


def ttl_of(requested: int) -> int:
    """The lease's ttl: 0 asks for the default; else it must be in TTL_SECONDS."""
    if requested == 0:
        return DEFAULT_TTL_SECONDS
    if requested not in TTL_SECONDS:
        raise ValueError("ttl_seconds must be 0 (the default, 60) or 10 to 3600")
    return requested


@dataclass(frozen=True)
class Held:
    """A live lease as the rules see it."""

    lease_id: UUID
    granted_at: datetime


def over_allowance(live: Sequence[Held], seats: int) -> set[UUID]:
    """Seats shrank below the live leases: the newest beyond the seat count are over (never cut:
    their holders are told, and close them)."""
    ranked = sorted(live, key=lambda h: (h.granted_at, str(h.lease_id)))
    return {h.lease_id for h in ranked[max(seats, 0) :]}


def live_at(granted_at: datetime, ended_at: datetime | None, at: datetime) -> bool:
    """Whether a lease held its seat at `at`, from its events (point-in-time reads)."""
    return granted_at <= at and (ended_at is None or at < ended_at)
