"""The ActivationKey aggregate, its four events and the state machine of rules §3.

    ISSUED → ACTIVATED → EXPIRED
    ISSUED → REVOKED
    ACTIVATED → REVOKED   (ops only)

The aggregate id is derived from the keyed hash of the code (see `identity.py`), so "redeemed at
most once" is the store's (originator_id, originator_version) constraint: two replicas that both
append version 2 cannot both succeed. No plaintext code is ever an attribute of an event.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from license_svc.domain.periods import period_end
from license_svc.domain.tiers import Product, Tier

# What a key may carry (rules §2): seats run in parallel, the period is whole months.
SEATS = range(1, 10_001)
PERIOD_MONTHS = range(1, 61)


class KeyStatus(str, Enum):
    ISSUED = "issued"
    ACTIVATED = "activated"
    REVOKED = "revoked"
    EXPIRED = "expired"


class KeyNotAvailable(Exception):
    """Unknown, used elsewhere, revoked or expired: one answer, so it reveals nothing more."""

    reason = "KEY_NOT_AVAILABLE"  # in the API's error details and the failed-attempt audit


class NotPermitted(Exception):
    """The caller's role may not make this change (e.g. a reseller revoking a redeemed key)."""


class NotRevocable(Exception):
    """The key has already reached a final state other than revoked (it expired)."""


class ActivationKey(Aggregate):
    class KeyIssued(Aggregate.Created):
        product: str
        tier: str
        seats: int
        period_months: int
        reseller_id: str
        batch_id: str
        hint: str

    class KeyActivated(Aggregate.Event):
        account_id: str
        activated_at: datetime
        period_starts_at: datetime
        period_ends_at: datetime

    class KeyRevoked(Aggregate.Event):
        reason: str
        revoked_by: str
        revoked_at: datetime

    class SubscriptionExpired(Aggregate.Event):
        expired_at: datetime

    @event(KeyIssued)
    def __init__(
        self,
        product: str,
        tier: str,
        seats: int,
        period_months: int,
        reseller_id: str,
        batch_id: str,
        hint: str,
    ) -> None:
        self.product = Product(product)
        self.tier = Tier(tier)
        self.seats = seats
        self.period_months = period_months
        self.reseller_id = reseller_id
        self.batch_id = batch_id
        self.hint = hint
        self.status = KeyStatus.ISSUED
        self.account_id: str | None = None
        self.activated_at: datetime | None = None
        self.period_starts_at: datetime | None = None
        self.period_ends_at: datetime | None = None
        self.revoked_at: datetime | None = None
        self.revoked_reason: str | None = None
        self.revoked_by: str | None = None
        self.expired_at: datetime | None = None

    @classmethod
    def issue(
        cls,
        key_id: UUID,
        *,
        product: Product,
        tier: Tier,
        seats: int,
        period_months: int,
        reseller_id: str,
        batch_id: str,
        hint: str,
    ) -> ActivationKey:
        if seats not in SEATS or period_months not in PERIOD_MONTHS:
            raise ValueError("seats must be 1..10,000 and period_months 1..60")
        # _create, not cls(...): the id is derived from the code's keyed hash, not generated.
        return cls._create(
            cls.KeyIssued,
            id=key_id,
            product=product.value,
            tier=tier.value,
            seats=seats,
            period_months=period_months,
            reseller_id=reseller_id,
            batch_id=batch_id,
            hint=hint,
        )

    # -- queries ---------------------------------------------------------------------------

    def period_has_ended(self, now: datetime) -> bool:
        return self.period_ends_at is not None and now >= self.period_ends_at

    def is_active_for(self, account_id: str, now: datetime) -> bool:
        return (
            self.status is KeyStatus.ACTIVATED
            and self.account_id == account_id
            and not self.period_has_ended(now)
        )

    def check_redeemable_by(self, account_id: str, now: datetime) -> None:
        """What ValidateKey asks: may this account redeem (or re-see) this key now?"""
        if self.status is KeyStatus.ISSUED or self.is_active_for(account_id, now):
            return
        raise KeyNotAvailable()

    # -- commands --------------------------------------------------------------------------

    def activate(self, account_id: str, now: datetime) -> bool:
        """Redeem on `account_id`. Returns False (and records nothing) when this account
        already holds it and its period still runs: activation is idempotent per account."""
        self.check_redeemable_by(account_id, now)
        if self.status is KeyStatus.ACTIVATED:
            return False
        self._activate(
            account_id=account_id,
            activated_at=now,
            period_starts_at=now,
            period_ends_at=period_end(now, self.period_months),
        )
        return True

    @event(KeyActivated)
    def _activate(
        self,
        account_id: str,
        activated_at: datetime,
        period_starts_at: datetime,
        period_ends_at: datetime,
    ) -> None:
        self.status = KeyStatus.ACTIVATED
        self.account_id = account_id
        self.activated_at = activated_at
        self.period_starts_at = period_starts_at
        self.period_ends_at = period_ends_at

    def revoke(self, *, reason: str, revoked_by: str, by_ops: bool, now: datetime) -> bool:
        """Resellers revoke unredeemed keys; ops may also revoke an activated one (fraud,
        refund). Revoking a revoked key again changes nothing (safe to retry) and returns
        False; an expired key cannot be revoked."""
        if self.status is KeyStatus.REVOKED:
            return False
        if self.status is KeyStatus.EXPIRED:
            raise NotRevocable("The key has expired and cannot be revoked")
        if self.status is KeyStatus.ACTIVATED and not by_ops:
            raise NotPermitted("Only ops can revoke a key that has been activated")
        self._revoke(reason=reason, revoked_by=revoked_by, revoked_at=now)
        return True

    @event(KeyRevoked)
    def _revoke(self, reason: str, revoked_by: str, revoked_at: datetime) -> None:
        self.status = KeyStatus.REVOKED
        self.revoked_reason = reason
        self.revoked_by = revoked_by
        self.revoked_at = revoked_at

    def expire(self, now: datetime) -> bool:
        """Record the end of the period, once. Returns whether an event was triggered."""
        if self.status is not KeyStatus.ACTIVATED or not self.period_has_ended(now):
            return False
        assert self.period_ends_at is not None
        self._expire(expired_at=self.period_ends_at)
        return True

    @event(SubscriptionExpired)
    def _expire(self, expired_at: datetime) -> None:
        self.status = KeyStatus.EXPIRED
        self.expired_at = expired_at


EVENT_TYPES = ("KeyIssued", "KeyActivated", "KeyRevoked", "SubscriptionExpired")


def event_type(topic: str) -> str:
    """The bare event name of rules §3 from a stored topic such as 'm:ActivationKey.KeyIssued'."""
    return topic.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
