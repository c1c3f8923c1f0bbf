"""Point-in-time answers: an account's subscription as the live read would have given it at T.

1. The store's head is read first: the answer is computed at that position and says so.
2. Which aggregates ever counted for the account: its keys from the key catalog (indexed by
   account_id), plus keys activated on it in the store after the catalog's position (the
   catalog lags; that tail is read by topic, bounded by the lag), plus its plans (the allowance
   view's table of every plan an account ever had, and likewise the store's `PlanStarted`
   events after that view's position).
3. Each aggregate is replayed through the `eventsourcing` repository up to the last version
   that was in effect at T, then the read-time rules of `license_svc.domain.subscription`
   apply at T, exactly as a live read at T did.

"In effect at T": an event counts from the service-clock instant it records — a key's
`activated_at`, `revoked_at`, `expired_at` and a plan event's `recorded_at` (the service clock
when it was recorded, not the provider's `occurred_at`). A key's `KeyIssued` is in
effect whenever its activation is. Versions are a prefix: an aggregate's later event never
counts before an earlier one.

4. Seat leases live at T (`seats_leased`) come from the leases' events: the allowance view's
   span of each lease (granted, ended) plus the store's lease events after its position.

Cost: one indexed read per aggregate the account ever had, one indexed read of the catalog,
one read of the catalog's and of the allowance view's lag — not a scan of the store;
see README "Point in time" for figures at 10⁴ and 10⁵ events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from license_svc.adapters.application import EventStore
from license_svc.domain.key import ActivationKey, KeyStatus
from license_svc.domain.plan import Plan
from license_svc.domain.seats import SeatLease, live_at
from license_svc.domain.subscription import SOURCE_PLAN, Entitlement, Subscription, subscription_at
from license_svc.domain.tiers import Product

from .live import LiveViews

ACTIVATED = get_topic(ActivationKey.KeyActivated)
PLAN_STARTED = get_topic(Plan.PlanStarted)
LEASE_TOPICS = [
    get_topic(cls)
    for cls in (SeatLease.SeatLeaseGranted, SeatLease.SeatLeaseReleased, SeatLease.SeatLeaseExpired)
]
# The service-clock instant an event records, by event class (else: its timestamp).
_INSTANTS: dict[type, str] = {
    ActivationKey.KeyActivated: "activated_at",
    ActivationKey.KeyRevoked: "revoked_at",
    ActivationKey.SubscriptionExpired: "expired_at",
    Plan.SubscriptionExpired: "expired_at",
    Plan.PlanStarted: "recorded_at",
    Plan.PlanRenewed: "recorded_at",
    Plan.PlanChanged: "recorded_at",
    Plan.PlanCancelled: "recorded_at",
    Plan.PlanEventIgnored: "recorded_at",
}


@dataclass(frozen=True)
class PointInTimeAnswer:
    subscription: Subscription
    position: int  # the store's head the answer was computed at


class PointInTime:
    def __init__(self, app: EventStore, views: LiveViews) -> None:
        self._app = app
        self._views = views
        store = app.store
        events = Identifier(store.datastore.schema or "public", store.events_table_name)
        self._tail = SQL(
            "SELECT originator_id, originator_version, topic, state, notification_id"
            " FROM {} WHERE notification_id > %s AND notification_id <= %s AND topic = %s"
        ).format(events)
        self._lease_tail = SQL(
            "SELECT originator_id, originator_version, topic, state, notification_id"
            " FROM {} WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s)"
            " ORDER BY notification_id"
        ).format(events)
        self._plan_starts = SQL(
            "SELECT originator_id, originator_version, topic, state, notification_id"
            " FROM {} WHERE notification_id > %s AND notification_id <= %s AND topic = %s"
        ).format(events)

    def subscription(self, account_id: str, product: Product, at: datetime) -> PointInTimeAnswer:
        head = self._app.store.max_notification_id() or 0
        entitlements = [
            found
            for aggregate_id in self._aggregates_of(account_id, head)
            if (found := self._entitlement_at(aggregate_id, account_id, product, at, head))
        ]
        answer = subscription_at(product, entitlements, at)
        leased = self._leased_at(account_id, product, at, head)
        return PointInTimeAnswer(replace(answer, seats_leased=leased), head)

    def _leased_at(self, account_id: str, product: Product, at: datetime, head: int) -> int:
        """Seat leases live at T by their events: granted by T and not ended by T (a lease
        expired at its last `expires_at`, which its SeatLeaseExpired records). The allowance
        view keeps each lease's span; the store's lease events after its position are applied
        on top, as the keys' tail is."""
        spans, position = self._views.allowance.lease_spans(account_id, product, at)
        for row in self._rows(self._lease_tail, (position, head, LEASE_TOPICS)):
            event = self._decode(row)
            if event.account_id != account_id or event.product != product.value:
                continue
            lease = row["originator_id"]
            if isinstance(event, SeatLease.SeatLeaseGranted):
                if event.granted_at <= at:
                    spans.setdefault(lease, (event.granted_at, None))
            elif lease in spans:
                ended = getattr(event, "released_at", None) or event.expired_at
                spans[lease] = (spans[lease][0], ended)
        return sum(1 for granted, ended in spans.values() if live_at(granted, ended, at))

    # -- which aggregates ------------------------------------------------------------------

    def _aggregates_of(self, account_id: str, head: int) -> list[UUID]:
        keys, catalog_position = self._views.catalog.keys_of_account(account_id)
        found = dict.fromkeys(keys)
        for row in self._rows(self._tail, (catalog_position, head, ACTIVATED)):
            if self._decode(row).account_id == account_id:
                found[row["originator_id"]] = None
        plans, plans_position = self._views.allowance.plans_of_account(account_id)
        found.update(dict.fromkeys(plans))
        for row in self._rows(self._plan_starts, (plans_position, head, PLAN_STARTED)):
            if self._decode(row).account_id == account_id:
                found[row["originator_id"]] = None
        return list(found)

    def _rows(self, statement: Any, params: tuple[Any, ...]) -> list[Any]:
        with self._app.store.datastore.get_connection() as conn:
            return list(conn.execute(statement, params, prepare=True).fetchall())

    def _decode(self, row: Any) -> Any:
        return self._app.mapper.to_domain_event(_stored(row))

    # -- one aggregate at T ----------------------------------------------------------------

    def _entitlement_at(
        self, aggregate_id: UUID, account_id: str, product: Product, at: datetime, head: int
    ) -> Entitlement | None:
        version = self._version_at(aggregate_id, at, head)
        if version == 0:
            return None
        aggregate: Any = self._app.repository.get(aggregate_id, version=version)
        extra: dict[str, Any]
        if isinstance(aggregate, ActivationKey):
            if aggregate.status is not KeyStatus.ACTIVATED:
                return None  # issued, revoked or recorded expired: not in the live view either
            ends, extra = aggregate.period_ends_at, {"hint": aggregate.hint}
        elif isinstance(aggregate, Plan):
            if aggregate.expired:
                return None
            ends = aggregate.ends_at
            extra = {"source": SOURCE_PLAN, "subscription_id": aggregate.subscription_id}
        else:
            return None
        if aggregate.account_id != account_id or aggregate.product is not product:
            return None
        assert aggregate.period_starts_at and ends
        return Entitlement(
            key_id=aggregate_id,
            account_id=account_id,
            product=product,
            tier=aggregate.tier,
            seats=aggregate.seats,
            period_starts_at=aggregate.period_starts_at,
            period_ends_at=ends,
            **extra,
        )

    def _version_at(self, aggregate_id: UUID, at: datetime, head: int) -> int:
        """The last version of the aggregate in effect at `at` (0: none)."""
        version, key = 0, False
        for item in self._app.store.positioned_events(aggregate_id):
            if item.position > head:
                break
            event = self._app.mapper.to_domain_event(item.stored)
            if isinstance(event, ActivationKey.KeyIssued):
                version, key = item.stored.originator_version, True  # counts with its activation
                continue
            if _instant(event) > at:
                break
            version = item.stored.originator_version
        return 0 if key and version == 1 else version  # a key only issued by then grants nothing


def _instant(event: Any) -> datetime:
    name = _INSTANTS.get(type(event))
    value: datetime = getattr(event, name) if name else event.timestamp
    return value


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )
