"""Sends due deliveries: lease, POST, record, schedule the next try.

- Leases: a sender claims due deliveries with `FOR UPDATE SKIP LOCKED` and stamps them with its
  id and `leased_until` (longer than one attempt can take). Other senders skip a leased
  delivery, so several replicas share the work without sending one delivery twice at once; a
  sender that dies mid-attempt leaves a lease that expires, and another sender takes the
  delivery up again: at least once, never lost.
- One attempt: the URL is checked again and its host resolved once (`addresses.py`); the
  request, signed by the Standard Webhooks scheme, goes to the checked address (`posting.py`).
- After it, in one transaction: the attempt's row (status, latency, error) and the delivery's
  new state. 2xx: delivered. 410: failed, and the endpoint is disabled (its other pending
  deliveries cancelled). Anything else (another status, a timeout, a refused address): retried
  after `retry_base · 2^(n-1)` seconds, capped at `retry_cap`, with jitter (a uniform draw
  between half and all of it), and no sooner than a `Retry-After` asks (capped at a day); once
  `retry_window` has passed since the delivery was recorded (or redelivered) it is failed.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from cryptography.exceptions import InvalidTag

from license_svc.adapters.clock import Clock

from . import addresses, signing
from .posting import MAX_RETRY_AFTER, Outcome, new_client, post
from .signing import SecretBox
from .tables import WebhookTables, hold_the_router


@dataclass(frozen=True)
class Policy:
    timeout: float = 10.0
    per_endpoint: int = 4
    retry_base: float = 5.0
    retry_cap: float = 6 * 3600.0
    retry_window: timedelta = timedelta(days=3)
    allow_private: bool = False

    @property
    def lease(self) -> timedelta:
        """Longer than one attempt: connect, write and read timeouts, plus slack."""
        return timedelta(seconds=3 * self.timeout + 5)


@dataclass(frozen=True)
class Claim:
    message_id: str
    endpoint_id: str
    url: str
    secret: bytes  # sealed
    body: bytes
    attempts: int
    window_from: datetime


class Sender:
    def __init__(
        self,
        tables: WebhookTables,
        box: SecretBox,
        clock: Clock,
        policy: Policy,
        client: httpx.Client | None = None,
        resolve: addresses.Resolve = addresses.system_resolve,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._tables = tables
        self._box = box
        self._clock = clock
        self.policy = policy
        self._client = client or new_client(policy.timeout)
        self._resolve = resolve
        self._draw = draw
        self.owner = uuid.uuid4().hex  # this sender's name on its leases

    def close(self) -> None:
        self._client.close()

    # -- leases ----------------------------------------------------------------------------

    def claim(self, limit: int, busy: Collection[str] = ()) -> list[Claim]:
        """Lease up to `limit` due deliveries, none of the endpoints in `busy`."""
        if limit <= 0:
            return []
        now = self._clock()
        t = self._tables.t
        with self._tables.datastore.transaction(commit=True) as curs:
            rows = curs.execute(
                f"UPDATE {t('webhook_deliveries')} d SET leased_until = %(until)s,"
                f" lease_owner = %(owner)s FROM {t('webhook_endpoints')} e"
                f" WHERE d.message_id IN (SELECT message_id FROM {t('webhook_deliveries')} x"
                " WHERE x.state = 'pending' AND x.next_attempt_at <= %(now)s"
                " AND (x.leased_until IS NULL OR x.leased_until < %(now)s)"
                " AND NOT (x.endpoint_id = ANY(%(busy)s::uuid[]))"
                " ORDER BY x.next_attempt_at LIMIT %(n)s FOR UPDATE SKIP LOCKED)"
                " AND e.endpoint_id = d.endpoint_id AND e.deleted_at IS NULL"
                " AND e.disabled_at IS NULL"
                " RETURNING d.message_id, d.endpoint_id, d.body, d.attempts, d.window_from,"
                " e.url, e.secret",
                {
                    "until": now + self.policy.lease,
                    "owner": self.owner,
                    "now": now,
                    "busy": list(busy),
                    "n": limit,
                },
            ).fetchall()
        return [
            Claim(
                r["message_id"],
                str(r["endpoint_id"]),
                r["url"],
                bytes(r["secret"]),
                bytes(r["body"]),
                r["attempts"],
                r["window_from"],
            )
            for r in rows
        ]

    def release(self, claims: Collection[Claim]) -> None:
        """Hand back leases this sender will not use now (its slots for them are full)."""
        if not claims:
            return
        with self._tables.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"UPDATE {self._tables.t('webhook_deliveries')} SET leased_until = NULL,"
                " lease_owner = NULL WHERE message_id = ANY(%s) AND lease_owner = %s",
                ([c.message_id for c in claims], self.owner),
            )

    # -- one attempt -----------------------------------------------------------------------

    def deliver(self, claim: Claim) -> str:
        """One attempt and its record; the delivery's state after it."""
        started = self._clock()
        outcome = self.attempt(claim)
        return self.record(claim, started, outcome)

    def send_due(self, limit: int = 100) -> list[str]:
        """Claim what is due and deliver it here, one after the other (tests, tools)."""
        return [self.deliver(claim) for claim in self.claim(limit)]

    def attempt(self, claim: Claim) -> Outcome:
        began = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - began) * 1000)

        allow = self.policy.allow_private
        try:
            target = addresses.parse(claim.url, allow)
            address = addresses.checked_address(target, allow, self._resolve)
        except addresses.UrlRefused as refused:
            return Outcome(0, took(), f"refused: {refused}")
        try:
            secret = self._box.open(claim.secret, claim.endpoint_id)
        except (InvalidTag, ValueError):
            return Outcome(0, took(), "the endpoint's secret does not open with this server secret")
        stamp = int(self._clock().timestamp())
        headers = signing.headers(secret, claim.message_id, stamp, claim.body)
        try:
            return post(self._client, target, address, headers, claim.body, self._clock(), took)
        except Exception as error:  # e.g. a URL httpx refuses: recorded, never a silent loop
            return Outcome(0, took(), f"{type(error).__name__}: {error}"[:500])

    def record(self, claim: Claim, started: datetime, outcome: Outcome) -> str:
        now = self._clock()
        t = self._tables.t
        attempts = claim.attempts + 1
        next_at = now
        if outcome.delivered:
            state = "delivered"
        elif outcome.status == 410 or now - claim.window_from >= self.policy.retry_window:
            state = "failed"
        else:
            state = "pending"
            next_at = now + self.backoff(attempts, outcome.retry_after)
        with self._tables.datastore.transaction(commit=True) as curs:
            if outcome.status == 410:
                # First, before any row lock (DeleteWebhookEndpoint takes them in this order):
                # no routing in flight may add deliveries after the cancel below.
                hold_the_router(curs)
            curs.execute(
                f"INSERT INTO {t('webhook_attempts')} (message_id, endpoint_id, attempt,"
                " started_at, status, latency_ms, error) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    claim.message_id,
                    claim.endpoint_id,
                    attempts,
                    started,
                    outcome.status or None,
                    outcome.latency_ms,
                    outcome.error,
                ),
            )
            # Only while this sender still holds the lease and nobody cancelled the delivery.
            curs.execute(
                f"UPDATE {t('webhook_deliveries')} SET attempts = attempts + 1, state = %s,"
                " next_attempt_at = %s, leased_until = NULL, lease_owner = NULL,"
                " last_status = %s, last_error = %s,"
                " delivered_at = CASE WHEN %s THEN %s ELSE delivered_at END"
                " WHERE message_id = %s AND lease_owner = %s AND state = 'pending'",
                (
                    state,
                    next_at,
                    outcome.status or None,
                    outcome.error,
                    outcome.delivered,
                    now,
                    claim.message_id,
                    self.owner,
                ),
            )
            counted = curs.rowcount
            if outcome.status == 410:
                # Delivery rows before the endpoint's row, as everywhere (no lock cycle).
                curs.execute(
                    f"UPDATE {t('webhook_deliveries')} SET state = 'cancelled',"
                    " leased_until = NULL WHERE endpoint_id = %s AND state = 'pending'",
                    (claim.endpoint_id,),
                )
            curs.execute(
                f"UPDATE {t('webhook_endpoints')} SET"
                " delivered = delivered + %s, failed = failed + %s,"
                " failed_attempts = failed_attempts + %s,"
                " disabled_at = CASE WHEN %s THEN coalesce(disabled_at, %s) ELSE disabled_at END,"
                " disabled_reason = CASE WHEN %s THEN coalesce(disabled_reason,"
                " 'it answered 410 Gone') ELSE disabled_reason END"
                " WHERE endpoint_id = %s",
                (
                    int(counted and state == "delivered"),
                    int(counted and state == "failed"),
                    int(bool(counted) and not outcome.delivered),
                    outcome.status == 410,
                    now,
                    outcome.status == 410,
                    claim.endpoint_id,
                ),
            )
        return state

    def backoff(self, attempts: int, retry_after: timedelta | None = None) -> timedelta:
        return backoff(self.policy, attempts, self._draw(), retry_after)


def backoff(
    policy: Policy, attempts: int, draw: float, retry_after: timedelta | None = None
) -> timedelta:
    """The wait after the `attempts`-th failed attempt; `draw` in [0, 1) is the jitter."""
    full = min(policy.retry_cap, policy.retry_base * 2 ** min(attempts - 1, 40))
    wait = timedelta(seconds=full * (0.5 + 0.5 * draw))
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
    return wait
