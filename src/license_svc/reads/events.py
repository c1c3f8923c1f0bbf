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
per batch for the keys the cache does not hold), never from a projection: a view lags the store,
and a live event of a key issued a moment ago must not be missed because the catalog has not
caught up. A key's facts are final once its version 2 is stored (or it is a plan, or no key), so
final facts are kept in one `FactCache` per process, shared by every stream and bounded
(least recently used out). A stream itself holds only the facts of the batch it is filtering:
150 streams from position 0 once held up to 100,000 keys each (about 18 MB per stream after
50,000 events), which is how a few streams grew a server by gigabytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from license_svc.domain.key import ActivationKey
from license_svc.domain.plan import Plan
from license_svc.domain.seats import SeatLease

from .feed import Abandoned, LogFeed, Memo, shared

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
MAX_FACTS = 100_000  # keys whose final facts a process keeps (~300 bytes each: ~30 MB)

Id = UUID | str  # an aggregate's id as the store gives it
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


@dataclass(frozen=True, slots=True)
class KeyFact:
    reseller_id: str = ""
    account_id: str = ""
    activated_at: int = 0  # position of its KeyActivated (a plan's start); 0 until then
    final: bool = True  # False: a key issued and not yet activated or revoked (may change)


UNKNOWN = KeyFact()
ISSUED_ONLY = KeyFact(final=False)  # a key issued in the batch, its reseller not looked at


class FactCache:
    """The process's final key facts, shared by every stream: at most `bound` keys, the least
    recently used leaving first. Facts that may still change are never kept."""

    def __init__(self, bound: int = MAX_FACTS) -> None:
        self.bound = max(0, bound)
        self._facts: OrderedDict[Id, KeyFact] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._facts)

    def get(self, key_id: Id) -> KeyFact | None:
        with self._lock:
            fact = self._facts.get(key_id)
            if fact is not None:
                self._facts.move_to_end(key_id)
            return fact

    def put(self, key_id: Id, fact: KeyFact) -> None:
        if not fact.final or not self.bound:
            return
        with self._lock:
            self._facts[key_id] = fact
            self._facts.move_to_end(key_id)
            while len(self._facts) > self.bound:
                self._facts.popitem(last=False)


class KeyFacts:
    """One stream's view of the key facts: those of the batch being filtered, no more."""

    def __init__(self, decode: Decode, cache: FactCache) -> None:
        self.decode = decode
        self.cache = cache
        self.batch: dict[Id, KeyFact] = {}
        self._memo: Memo | None = None  # the shared batch `batch` was learned for

    async def learn(
        self,
        events: Sequence[Notification],
        feed: LogFeed,
        memo: Memo | None = None,
        resellers: bool = True,
    ) -> None:
        """Know every key of `events`: from the cache, else from the store (whose versions 1
        and 2 include those of the batch: the batch is committed). With the `memo` of a shared
        batch, the first stream to ask learns them and the others take its answer. Without
        `resellers`, the reseller of a key merely issued in the batch is not decoded (an
        account's filter never lets a KeyIssued through)."""
        self._memo = memo
        if memo is None:
            self.batch = await self._learn(events, feed, resellers)
            return
        key = ("facts", id(self.cache), resellers)
        while True:
            future, mine = memo.claim(key)
            if not mine:
                try:
                    if future.done():
                        self.batch = future.result()
                    else:
                        self.batch = await shared(future)
                    return
                except Abandoned:
                    continue  # its stream left or failed: learn them here
            try:
                self.batch = await self._learn(events, feed, resellers)
            except BaseException:
                memo.abandon(key, future)
                raise
            future.set_result(self.batch)
            return

    async def _learn(
        self, events: Sequence[Notification], feed: LogFeed, resellers: bool
    ) -> dict[Id, KeyFact]:
        batch: dict[Id, KeyFact] = {}
        missing: list[Id] = []
        # A key's first event says all a filter needs about it at that position (its reseller;
        # no account yet), so only the keys with later events in the batch are looked up.
        later = {e.originator_id for e in events if not _first(e)}
        for event in events:
            if event.originator_id in later or event.originator_id in batch:
                continue
            if event.topic == ISSUED and not resellers:
                batch[event.originator_id] = ISSUED_ONLY  # may change: never cached
            else:
                batch[event.originator_id] = fact = self._fact([event])
                self.cache.put(event.originator_id, fact)  # a plan's start is final already
        for key_id in later:
            cached = self.cache.get(key_id)
            if cached is None:
                missing.append(key_id)
            else:
                batch[key_id] = cached
        if missing:
            first: dict[Id, list[Notification]] = {key_id: [] for key_id in missing}
            for event in await feed.call(feed.reader.first_events, missing):
                first[event.originator_id].append(event)
            for key_id, found in first.items():
                batch[key_id] = fact = self._fact(found)
                self.cache.put(key_id, fact)
        return batch

    def _fact(self, first: list[Notification]) -> KeyFact:
        reseller, account, activated_at, issued, second = "", "", 0, False, False
        for event in first:
            second = second or event.originator_version == 2
            if event.topic == ISSUED:
                issued = True
                reseller = self.decode(event).reseller_id
            elif event.topic in (ACTIVATED, PLAN_STARTED, LEASE_GRANTED):
                account, activated_at = self.decode(event).account_id, event.id
        return KeyFact(reseller, account, activated_at, final=second or not issued)

    def matching(self, wanted: EventFilter, events: Sequence[Notification]) -> list[int]:
        """The indexes of the events of the batch last learned that `wanted` lets through.
        On a shared batch, an account's or a reseller's events are found through an index
        built once for every stream, not by each stream looking at every event."""
        memo = self._memo if wanted.needs_facts else None
        if memo is None:
            return [i for i, event in enumerate(events) if self.matches(wanted, event)]
        if wanted.account_id:
            index = memo.get(("by_account", id(self.cache)), lambda: self._by_account(events))
            candidates = index.get(wanted.account_id, ())
        else:
            index = memo.get(("by_reseller", id(self.cache)), lambda: self._by_reseller(events))
            candidates = index.get(wanted.reseller_id, ())
        return [i for i in candidates if self.matches(wanted, events[i])]

    def _by_account(self, events: Sequence[Notification]) -> dict[str, list[int]]:
        index: dict[str, list[int]] = {}
        for i, event in enumerate(events):
            key = self.batch.get(event.originator_id, UNKNOWN)
            if key.account_id and 0 < key.activated_at <= event.id:
                index.setdefault(key.account_id, []).append(i)
        return index

    def _by_reseller(self, events: Sequence[Notification]) -> dict[str, list[int]]:
        index: dict[str, list[int]] = {}
        for i, event in enumerate(events):
            key = self.batch.get(event.originator_id, UNKNOWN)
            if key.reseller_id:
                index.setdefault(key.reseller_id, []).append(i)
        return index

    def matches(self, wanted: EventFilter, event: Notification) -> bool:
        if wanted.topics and event.topic not in wanted.topics:
            return False
        if wanted.key_id is not None and event.originator_id != wanted.key_id:
            return False
        if not wanted.needs_facts:
            return True
        key = self.batch.get(event.originator_id, UNKNOWN)
        if wanted.reseller_id and key.reseller_id != wanted.reseller_id:
            return False
        if not wanted.account_id:
            return True
        return key.account_id == wanted.account_id and 0 < key.activated_at <= event.id


def _first(event: Notification) -> bool:
    return event.originator_version == 1 and event.topic in (ISSUED, PLAN_STARTED)


def aggregate_type(topic: str) -> str:
    """'license_svc.domain.plan:Plan.PlanStarted' → 'Plan'."""
    return topic.rsplit(":", 1)[-1].split(".", 1)[0]
