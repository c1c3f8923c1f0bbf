"""Which events of the log a StreamEvents filter lets through, decided from the store alone.

- `event_types`: by the stored topic (no decoding).
- `key_id`: by the event's aggregate id.
- `reseller_id`: every event of a key that reseller issued. Only `KeyIssued` carries the
  reseller, so the filter learns each key's reseller from the key's version 1. (A plan bought
  online has no reseller: its events never match.)
- `account_id`: the events of a key from its `KeyActivated` on that account onwards (the
  activation, and a later revocation or expiry). The key's `KeyIssued` is not the account's:
  at that position nobody could know who would redeem it, and a filter must answer the same
  for an event whether it is read as history or live, or a resumed stream would differ.
  A plan's events are all its account's (`PlanStarted` names it), and so are a seat lease's
  (`SeatLeaseGranted` names it): an account's lease history is this filter.

Facts about keys come from the store itself (versions 1 and 2 of each key, one indexed query
per batch for the keys not seen yet), never from a projection: a view lags the store, and a
live event of a key issued a moment ago must not be missed because the catalog has not caught
up. Facts never change once recorded (versions 1 and 2 are final), so they are cached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from license_svc.domain.key import ActivationKey
from license_svc.domain.plan import Plan
from license_svc.domain.seats import SeatLease

from .feed import LogFeed

_EVENTS: tuple[type, ...] = (
    ActivationKey.KeyIssued,
    ActivationKey.KeyActivated,
    ActivationKey.KeyRevoked,
    ActivationKey.SubscriptionExpired,
    Plan.PlanStarted,
    Plan.PlanRenewed,
    Plan.PlanChanged,
    Plan.PlanCancelled,
    Plan.PlanEventIgnored,
    Plan.SubscriptionExpired,
    SeatLease.SeatLeaseGranted,
    SeatLease.SeatLeaseReleased,
    SeatLease.SeatLeaseExpired,
)
# Bare name → stored topics (SubscriptionExpired is both a key's and a plan's).
EVENT_TOPICS: dict[str, frozenset[str]] = {
    name: frozenset(get_topic(cls) for cls in _EVENTS if cls.__name__ == name)
    for name in dict.fromkeys(cls.__name__ for cls in _EVENTS)
}
ISSUED = get_topic(ActivationKey.KeyIssued)
ACTIVATED = get_topic(ActivationKey.KeyActivated)
PLAN_STARTED = get_topic(Plan.PlanStarted)
LEASE_GRANTED = get_topic(SeatLease.SeatLeaseGranted)
MAX_FACTS = 100_000  # keys remembered per stream before the cache starts afresh

Decode = Callable[[Notification], Any]  # a stored event → the domain event


@dataclass(frozen=True)
class EventFilter:
    topics: frozenset[str] = frozenset()  # empty: every type
    key_id: UUID | None = None
    reseller_id: str = ""
    account_id: str = ""

    @property
    def needs_facts(self) -> bool:
        return bool(self.reseller_id or self.account_id)

    @property
    def filters(self) -> bool:
        return bool(self.topics or self.key_id or self.needs_facts)


@dataclass
class _Key:
    reseller_id: str = ""
    account_id: str = ""
    activated_at: int = 0  # position of its KeyActivated (a plan's start); 0 until then


@dataclass
class KeyFacts:
    decode: Decode
    _keys: dict[UUID | str, _Key] = field(default_factory=dict)

    async def learn(self, events: Sequence[Notification], feed: LogFeed) -> None:
        """Know every key of `events` (from the batch itself, else from the store)."""
        for event in events:
            if event.originator_version <= 2:
                self._record(event)
        unknown = list({e.originator_id for e in events if e.originator_id not in self._keys})
        if unknown:
            if len(self._keys) + len(unknown) > MAX_FACTS:
                self._keys.clear()
            for event in await feed.call(feed.reader.first_events, unknown):
                self._record(event)
            for key_id in unknown:
                self._keys.setdefault(key_id, _Key())  # not a key (another aggregate)

    def _record(self, event: Notification) -> None:
        if event.topic == ISSUED:
            key = self._keys.setdefault(event.originator_id, _Key())
            key.reseller_id = self.decode(event).reseller_id
        elif event.topic in (ACTIVATED, PLAN_STARTED, LEASE_GRANTED):
            key = self._keys.setdefault(event.originator_id, _Key())
            key.account_id = self.decode(event).account_id
            key.activated_at = event.id

    def matches(self, wanted: EventFilter, event: Notification) -> bool:
        if wanted.topics and event.topic not in wanted.topics:
            return False
        if wanted.key_id is not None and event.originator_id != wanted.key_id:
            return False
        if not wanted.needs_facts:
            return True
        key = self._keys.get(event.originator_id) or _Key()
        if wanted.reseller_id and key.reseller_id != wanted.reseller_id:
            return False
        if not wanted.account_id:
            return True
        return key.account_id == wanted.account_id and 0 < key.activated_at <= event.id


def aggregate_type(topic: str) -> str:
    """'license_svc.domain.plan:Plan.PlanStarted' → 'Plan'."""
    return topic.rsplit(":", 1)[-1].split(".", 1)[0]
