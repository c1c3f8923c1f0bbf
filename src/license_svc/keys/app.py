"""The licensing application on the `eventsourcing` library: commands return store positions.

The store's optimistic concurrency decides every race: two replicas that activate (or revoke,
or expire) one key both try to append the same aggregate version and exactly one succeeds; the
loser reloads and decides again against what won.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.utils import get_topic

from license_svc.adapters.application import (
    CONFLICT_RETRIES,
    EventStore,
    KeyNotFound,
)
from license_svc.adapters.eventstore import IssueRequest
from license_svc.domain import codes
from license_svc.domain.key import (
    PERIOD_MONTHS,
    SEATS,
    ActivationKey,
    KeyNotAvailable,
)
from license_svc.domain.tiers import Product, Tier, has_catalog

MAX_BATCH = 10_000
# IssueKeys calls minting at once in one process (each holds a batch of 10,000 keys in
# memory); the composition root sets it from LICENSE_SVC_ISSUE_CONCURRENCY.
ISSUE_CONCURRENCY = "ISSUE_CONCURRENCY"
DEFAULT_ISSUE_CONCURRENCY = 2
# How long a request id replays its codes (LICENSE_SVC_ISSUE_REPLAY_HOURS). The codes derive
# from the pepper and the request id, so a replay re-mints them: a window that never closed
# would let a token stolen years later fetch every unredeemed code of a guessable request id.
ISSUE_REPLAY_HOURS = "ISSUE_REPLAY_HOURS"
DEFAULT_ISSUE_REPLAY_HOURS = 72.0


class RequestIdReused(Exception):
    """The same request_id was used before with different parameters."""


class RequestIdExpired(Exception):
    """The request_id's replay window has ended: its codes are not to be had again."""


class UnsupportedProduct(Exception):
    """There is no tier catalog for that product yet."""


class IssuingBusy(Exception):
    """Every IssueKeys slot of this process stayed taken for as long as the caller could wait."""


@dataclass(frozen=True)
class IssueKeys:
    reseller_id: str
    product: Product
    tier: Tier
    seats: int
    period_months: int
    count: int
    request_id: str = ""

    def fingerprint(self) -> str:
        fields = (self.product.value, self.tier.value, self.seats, self.period_months, self.count)
        return hashlib.sha256(repr(fields).encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    key_id: UUID
    code: str
    hint: str


@dataclass(frozen=True)
class IssuedBatch:
    batch_id: UUID
    keys: list[IssuedKey]
    position: int
    replayed: bool


@dataclass(frozen=True)
class Activation:
    key: ActivationKey
    position: int
    already_active: bool


@dataclass(frozen=True)
class Change:
    key: ActivationKey
    position: int


class LicensingApp(EventStore):
    """The key commands on the store: issue, activate, revoke, expire."""

    name = "licensing"  # the store's application name, as EventStore

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # as EventStore's
        super().__init__(*args, **kwargs)
        slots = int(self.env.get(ISSUE_CONCURRENCY) or DEFAULT_ISSUE_CONCURRENCY)
        self._issue_slots = threading.BoundedSemaphore(max(1, slots))
        hours = float(self.env.get(ISSUE_REPLAY_HOURS) or DEFAULT_ISSUE_REPLAY_HOURS)
        self._replay_window = timedelta(hours=hours)

    # -- issuing ---------------------------------------------------------------------------

    def issue_keys(self, cmd: IssueKeys, wait: float | None = None) -> IssuedBatch:
        """Mint and store a batch, or answer a request_id seen before as it was answered.
        At most ISSUE_CONCURRENCY calls mint at once; another waits up to `wait` seconds
        (None: as long as it takes), then raises IssuingBusy."""
        if not has_catalog(cmd.product):
            raise UnsupportedProduct(cmd.product)
        if cmd.seats not in SEATS or cmd.period_months not in PERIOD_MONTHS:
            raise ValueError("seats must be 1..10,000 and period_months 1..60")  # as issue()
        with self._issue_slot(wait):
            if cmd.request_id:
                seen = self.store.find_issue_request(cmd.reseller_id, cmd.request_id)
                if seen is not None:
                    return self._replay(cmd, seen)
            return self._issue(cmd, cmd.request_id or "anon:" + secrets.token_hex(16))

    @contextmanager
    def _issue_slot(self, wait: float | None) -> Iterator[None]:
        if not self._issue_slots.acquire(timeout=wait):
            raise IssuingBusy()
        try:
            yield
        finally:
            self._issue_slots.release()

    def _issue(self, cmd: IssueKeys, request_id: str) -> IssuedBatch:
        batch_id = self.identity.batch_id(cmd.reseller_id, request_id)
        keys = self._mint(cmd, request_id)
        record = IssueRequest(
            reseller_id=cmd.reseller_id,
            request_id=request_id,
            batch_id=batch_id,
            fingerprint=cmd.fingerprint(),
            count=cmd.count,
            last_key_id=keys[-1].key_id,
            created_at=self.clock(),
        )
        try:
            position = self.store.insert_issued(record, self.issued_events(cmd, batch_id, keys))
        except IntegrityError:
            # A concurrent copy of this request won the race: answer as it did.
            seen = self.store.find_issue_request(cmd.reseller_id, request_id)
            if seen is None:
                raise
            return self._replay(cmd, seen)
        return IssuedBatch(batch_id, keys, position, replayed=False)

    def issued_events(
        self, cmd: IssueKeys, batch_id: UUID, keys: list[IssuedKey]
    ) -> list[StoredEvent]:
        """The batch's `KeyIssued` events exactly as the library's mapper stores them, without
        building an aggregate per key: they differ only in originator_id and hint, so one
        event is mapped with a marker for its hint and each key's hint is spliced in, encoded
        by the same transcoder. (A compressor or cipher would scramble the splice: then every
        event is mapped.)"""
        fields: dict[str, Any] = {
            "originator_version": ActivationKey.INITIAL_VERSION,
            "timestamp": ActivationKey.KeyIssued.create_timestamp(),  # one instant per batch
            "originator_topic": get_topic(ActivationKey),
            "product": cmd.product.value,
            "tier": cmd.tier.value,
            "seats": cmd.seats,
            "period_months": cmd.period_months,
            "reseller_id": cmd.reseller_id,
            "batch_id": str(batch_id),
        }
        mapper = self.mapper

        def mapped(key_id: UUID, hint: str) -> StoredEvent:
            event = ActivationKey.KeyIssued(originator_id=key_id, **{**fields, "hint": hint})
            return mapper.to_stored_event(event)

        marker = f"\x00hint:{secrets.token_hex(8)}\x00"
        template = mapped(keys[0].key_id, marker)
        head, *tail = template.state.split(mapper.transcoder.encode(marker))
        if mapper.compressor or mapper.cipher or len(tail) != 1:
            return [mapped(k.key_id, k.hint) for k in keys]
        encode, (suffix,) = mapper.transcoder.encode, tail
        version, topic = template.originator_version, template.topic
        return [StoredEvent(k.key_id, version, topic, head + encode(k.hint) + suffix) for k in keys]

    def _mint(self, cmd: IssueKeys, request_id: str) -> list[IssuedKey]:
        identity = self.identity
        minted = identity.mint_batch(cmd.reseller_id, request_id, cmd.count, cmd.product.prefix)
        return [IssuedKey(identity.key_id(c), c.text(), codes.hint(c)) for c in minted]

    def _replay(self, cmd: IssueKeys, seen: IssueRequest) -> IssuedBatch:
        if self.clock() - seen.created_at > self._replay_window:
            raise RequestIdExpired(cmd.request_id)  # before anything is minted
        if seen.fingerprint != cmd.fingerprint():
            raise RequestIdReused(cmd.request_id)
        keys = self._mint(cmd, seen.request_id)
        position = self.store.position_of(seen.last_key_id, ActivationKey.INITIAL_VERSION) or 0
        return IssuedBatch(seen.batch_id, keys, position, replayed=True)

    # -- changing --------------------------------------------------------------------------

    def activate(self, key_id: UUID, account_id: str) -> Activation:
        for _ in range(CONFLICT_RETRIES):
            try:
                key = self.get_key(key_id)
            except KeyNotFound:
                raise KeyNotAvailable() from None
            now = self.clock()
            if not key.activate(account_id, now):
                position = self.store.position_of(key_id, 2) or 0
                return Activation(key, position, already_active=True)
            try:
                recordings = self.save(key)
            except IntegrityError:
                continue  # another replica appended first: decide again against its event
            return Activation(key, recordings[-1].notification.id, already_active=False)
        raise KeyNotAvailable()

    def revoke(
        self,
        key_id: UUID,
        *,
        reason: str,
        revoked_by: str,
        by_ops: bool,
        owner: str | None = None,
    ) -> Change:
        """`owner`: a reseller revokes only its own keys; another's key looks like no key."""
        for _ in range(CONFLICT_RETRIES):
            key = self.get_key(key_id)
            if owner is not None and key.reseller_id != owner:
                raise KeyNotFound(str(key_id))
            if not key.revoke(
                reason=reason, revoked_by=revoked_by, by_ops=by_ops, now=self.clock()
            ):
                return Change(key, self.store.position_of(key_id, key.version) or 0)
            try:
                recordings = self.save(key)
            except IntegrityError:
                continue
            return Change(key, recordings[-1].notification.id)
        raise KeyNotAvailable()

    def expire(self, key_id: UUID) -> Change | None:
        """Append SubscriptionExpired if due. Safe to run on many replicas at once: a sweeper
        that loses the race reloads, sees the key expired and appends nothing."""
        for _ in range(CONFLICT_RETRIES):
            key = self.get_key(key_id)
            if not key.expire(self.clock()):
                return None
            try:
                recordings = self.save(key)
            except IntegrityError:
                continue
            return Change(key, recordings[-1].notification.id)
        return None
