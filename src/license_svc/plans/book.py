"""Plans bought online: the billing service's provider events recorded on `Plan` aggregates.

The store's optimistic concurrency decides races as it does for keys: two replicas recording
events of one subscription append the same version, one wins, the other reloads and decides
again — so a provider retry that races its original is still recorded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from license_svc.adapters.application import CONFLICT_RETRIES, EventStore
from license_svc.adapters.clock import Clock
from license_svc.domain.identity import KeyIdentity
from license_svc.domain.plan import Plan, ProviderEvent


class PlanConflict(Exception):
    """The plan kept changing under this call: the provider may retry the event."""


@dataclass(frozen=True)
class PlanRecording:
    plan: Plan
    position: int  # of the event that recorded the provider event (now or the first time)
    duplicate: bool  # billing_event_id seen before: nothing new was recorded
    ignored: bool  # older than the plan's latest event: recorded for audit only


class PlanBook:
    def __init__(self, app: EventStore, identity: KeyIdentity | None, clock: Clock) -> None:
        """`identity` None: a process without the pepper (the sweeper), which only expires."""
        self._app = app
        self._identity = identity
        self._clock = clock

    def plan_id(self, subscription_id: str) -> UUID:
        if self._identity is None:
            raise RuntimeError("this PlanBook was built without a pepper (expiry only)")
        return self._identity.plan_id(subscription_id)

    def get(self, plan_id: UUID) -> Plan | None:
        try:
            return cast(Plan, self._app.repository.get(plan_id))
        except AggregateNotFoundError:
            return None

    def record(self, incoming: ProviderEvent) -> PlanRecording:
        plan_id = self.plan_id(incoming.subscription_id)
        for _ in range(CONFLICT_RETRIES):
            plan, now = self.get(plan_id), self._clock()
            if plan is None:
                plan = Plan.start(plan_id, incoming, now)
            elif not plan.record(incoming, now):
                return PlanRecording(plan, self._position_of(plan, incoming), True, False)
            try:
                recordings = self._app.save(plan)
            except IntegrityError:
                continue
            last = recordings[-1]
            ignored = isinstance(last.domain_event, Plan.PlanEventIgnored)
            return PlanRecording(plan, last.notification.id, False, ignored)
        raise PlanConflict(incoming.subscription_id)

    def expire(self, plan_id: UUID) -> int | None:
        """Append SubscriptionExpired once the plan's end has passed; safe on many replicas."""
        for _ in range(CONFLICT_RETRIES):
            plan = self.get(plan_id)
            if plan is None or not plan.expire(self._clock()):
                return None
            try:
                recordings = self._app.save(plan)
            except IntegrityError:
                continue
            return recordings[-1].notification.id
        return None

    def _position_of(self, plan: Plan, incoming: ProviderEvent) -> int:
        """Where a provider event was first recorded: read from the plan's history."""
        for entry in self._app.history(plan.id):
            if entry.payload.get("billing_event_id") == incoming.billing_event_id:
                return entry.position
        return 0
