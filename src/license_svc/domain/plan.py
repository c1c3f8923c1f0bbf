"""The Plan aggregate: a subscription bought online, fed by the payment provider's events.

The billing service forwards every provider event it receives. Providers retry for days and
deliver out of order, so the aggregate decides, not the order of arrival:

- Each provider event is a full snapshot of the subscription (tier, seats, period, cancel flag)
  at `occurred_at`. The plan's state is the snapshot of the latest event applied, ordered by
  `(occurred_at, kind rank, billing_event_id)` — a total order, so every delivery order of one
  set of events ends in the same state.
- An event already seen (`billing_event_id`) changes nothing and is answered as the first time.
- An event older than the latest one applied is recorded for audit (`PlanEventIgnored`) but
  never rolls the plan back.
- Whatever event arrives first starts the plan (a RENEWED before its STARTED starts it).
- Cancel at period end keeps the plan until `period_ends_at`; an immediate cancel ends it at
  `occurred_at`.
- `SubscriptionExpired` is appended by the sweeper once the plan's end has passed; a later
  renewal makes it active again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate, event

from license_svc.domain.tiers import Product, Tier


class PlanKind(str, Enum):
    STARTED = "started"
    RENEWED = "renewed"
    CHANGED = "changed"
    CANCELLED = "cancelled"


# Ties of occurred_at: a cancellation outranks a change, which outranks a renewal and a start.
KIND_RANK = {PlanKind.STARTED: 0, PlanKind.RENEWED: 1, PlanKind.CHANGED: 2, PlanKind.CANCELLED: 3}
MAX_SEATS = 10_000


@dataclass(frozen=True)
class ProviderEvent:
    """One payment-provider event as the billing service forwards it."""

    billing_event_id: str
    subscription_id: str
    account_id: str
    product: Product
    tier: Tier
    seats: int
    kind: PlanKind
    period_starts_at: datetime
    period_ends_at: datetime
    occurred_at: datetime
    cancel_at_period_end: bool = False

    @property
    def order(self) -> tuple[datetime, int, str]:
        return (self.occurred_at, KIND_RANK[self.kind], self.billing_event_id)

    @property
    def ends_at(self) -> datetime:
        """When the plan's entitlement ends after this event."""
        if self.kind is PlanKind.CANCELLED and not self.cancel_at_period_end:
            return min(self.occurred_at, self.period_ends_at)
        return self.period_ends_at

    def snapshot(self) -> dict[str, Any]:
        """The event's attributes as stored: the subscription's whole state at `occurred_at`."""
        return {
            "subscription_id": self.subscription_id,
            "account_id": self.account_id,
            "product": self.product.value,
            "billing_event_id": self.billing_event_id,
            "kind": self.kind.value,
            "tier": self.tier.value,
            "seats": self.seats,
            "period_starts_at": self.period_starts_at,
            "period_ends_at": self.period_ends_at,
            "ends_at": self.ends_at,
            "occurred_at": self.occurred_at,
            "cancel_at_period_end": self.cancel_at_period_end,
        }


@dataclass(frozen=True)
class _SnapshotFields:
    """The fields of every event that starts or moves a plan: who and what repeat in each, so
    a view can apply any one of them alone."""

    subscription_id: str
    account_id: str
    product: str
    billing_event_id: str
    kind: str  # the provider kind (a RENEWED may arrive first and start the plan)
    tier: str
    seats: int
    period_starts_at: datetime
    period_ends_at: datetime
    ends_at: datetime
    occurred_at: datetime
    cancel_at_period_end: bool
    recorded_at: datetime  # the service's clock: when the event took effect here

    # v1 had no recorded_at: the store's own timestamp of the event is the best it knew.
    class_version = 2
    upcast_v1_v2 = staticmethod(lambda state: _with_recorded_at(state))


class Plan(Aggregate):
    if TYPE_CHECKING:  # held by `_take` from each snapshot event (SNAPSHOT_FIELDS)
        billing_event_id: str
        kind: PlanKind
        tier: Tier
        seats: int
        period_starts_at: datetime
        period_ends_at: datetime
        ends_at: datetime
        occurred_at: datetime
        cancel_at_period_end: bool

    class PlanStarted(_SnapshotFields, Aggregate.Created):
        pass

    class _Snapshot(_SnapshotFields, Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._take(**{name: getattr(self, name) for name in SNAPSHOT_FIELDS})

    class PlanRenewed(_Snapshot):
        pass

    class PlanChanged(_Snapshot):
        pass

    class PlanCancelled(_Snapshot):
        pass

    class PlanEventIgnored(Aggregate.Event):
        billing_event_id: str
        kind: str
        occurred_at: datetime
        reason: str
        recorded_at: datetime
        class_version = 2
        upcast_v1_v2 = staticmethod(lambda state: _with_recorded_at(state))

    class SubscriptionExpired(Aggregate.Event):
        expired_at: datetime

    @event(PlanStarted)
    def __init__(
        self,
        subscription_id: str,
        account_id: str,
        product: str,
        billing_event_id: str,
        kind: str,
        tier: str,
        seats: int,
        period_starts_at: datetime,
        period_ends_at: datetime,
        ends_at: datetime,
        occurred_at: datetime,
        cancel_at_period_end: bool,
        recorded_at: datetime,
    ) -> None:
        self.subscription_id = subscription_id
        self.account_id = account_id
        self.product = Product(product)
        self.seen: set[str] = set()  # every billing_event_id recorded, applied or ignored
        self.expired = False
        self._take(**{name: value for name, value in locals().items() if name in SNAPSHOT_FIELDS})

    @classmethod
    def start(cls, plan_id: Any, first: ProviderEvent, now: datetime) -> Plan:
        return cls._create(cls.PlanStarted, id=plan_id, recorded_at=now, **first.snapshot())

    # -- queries ---------------------------------------------------------------------------

    @property
    def order(self) -> tuple[datetime, int, str]:
        return (self.occurred_at, KIND_RANK[self.kind], self.billing_event_id)

    @property
    def cancelled(self) -> bool:
        return self.kind is PlanKind.CANCELLED

    def is_active(self, now: datetime) -> bool:
        return self.period_starts_at <= now < self.ends_at

    # -- commands --------------------------------------------------------------------------

    def record(self, incoming: ProviderEvent, now: datetime) -> bool:
        """Apply one provider event at `now` (the service's clock). Returns False (records
        nothing) for one seen before."""
        if incoming.billing_event_id in self.seen:
            return False
        if incoming.account_id != self.account_id or incoming.product is not self.product:
            self._ignore(incoming, "the event names another account or product", now)
        elif incoming.order <= self.order:
            self._ignore(incoming, "older than the latest event applied", now)
        else:
            snapshot = incoming.snapshot()
            self.trigger_event(SNAPSHOT_EVENTS[incoming.kind], recorded_at=now, **snapshot)
        return True

    def _ignore(self, incoming: ProviderEvent, reason: str, now: datetime) -> None:
        self._ignored(
            billing_event_id=incoming.billing_event_id,
            kind=incoming.kind.value,
            occurred_at=incoming.occurred_at,
            reason=reason,
            recorded_at=now,
        )

    def expire(self, now: datetime) -> bool:
        """Record the end of the plan, once per end. Returns whether an event was triggered."""
        if self.expired or now < self.ends_at:
            return False
        self._expire(expired_at=self.ends_at)
        return True

    # -- applying --------------------------------------------------------------------------

    def _take(self, **state: Any) -> None:
        """Hold a snapshot event's state (SNAPSHOT_FIELDS): the subscription as it now is."""
        self.seen.add(state["billing_event_id"])
        for name in SNAPSHOT_FIELDS:
            setattr(self, name, state[name])
        self.kind = PlanKind(state["kind"])
        self.tier = Tier(state["tier"])
        self.expired = False

    @event(PlanEventIgnored)
    def _ignored(
        self,
        billing_event_id: str,
        kind: str,
        occurred_at: datetime,
        reason: str,
        recorded_at: datetime,
    ) -> None:
        self.seen.add(billing_event_id)

    @event(SubscriptionExpired)
    def _expire(self, expired_at: datetime) -> None:
        self.expired = True


def _with_recorded_at(state: dict[str, Any]) -> None:
    state["recorded_at"] = state["timestamp"]


SNAPSHOT_FIELDS = (
    "billing_event_id",
    "kind",
    "tier",
    "seats",
    "period_starts_at",
    "period_ends_at",
    "ends_at",
    "occurred_at",
    "cancel_at_period_end",
)
# A STARTED newer than what the plan holds (a restart after a lapse) renews it.
SNAPSHOT_EVENTS: dict[PlanKind, type[Plan._Snapshot]] = {
    PlanKind.STARTED: Plan.PlanRenewed,
    PlanKind.RENEWED: Plan.PlanRenewed,
    PlanKind.CHANGED: Plan.PlanChanged,
    PlanKind.CANCELLED: Plan.PlanCancelled,
}
PLAN_EVENT_TYPES = (
    "PlanStarted",
    "PlanRenewed",
    "PlanChanged",
    "PlanCancelled",
    "PlanEventIgnored",
    "SubscriptionExpired",
)
