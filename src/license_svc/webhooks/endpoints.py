"""Endpoints and their delivery log, as the WebhookService manages them.

Who may touch which endpoint is the caller's business (the servicer knows the principal): every
method here takes the reseller a caller is confined to (`None` for ops) and answers an endpoint
of another reseller exactly as one that does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from license_svc.adapters.clock import Clock

from . import addresses
from .messages import TYPES
from .signing import SecretBox, new_secret
from .tables import WebhookTables, hold_the_router

MAX_ENDPOINTS = 20  # per reseller: each endpoint multiplies the deliveries of every event
RECENT_ATTEMPTS = 5  # attempts shown with each delivery of a page


class EndpointNotFound(Exception):
    """No such endpoint (or not one the caller may see)."""


class DeliveryNotFound(Exception):
    """No such message for this endpoint."""


class EndpointDisabled(Exception):
    """The endpoint answered 410 Gone or was deleted: nothing more is sent to it."""


class TooManyEndpoints(Exception):
    """A reseller may keep MAX_ENDPOINTS endpoints."""


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    reseller_id: str
    url: str
    event_types: list[str]
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    deleted_at: datetime | None = None
    pending: int = 0
    oldest_pending_at: datetime | None = None


@dataclass(frozen=True)
class Created:
    endpoint: Endpoint
    secret: str  # shown once


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[dict[str, Any]]
    attempts: dict[str, list[dict[str, Any]]]
    more: bool


@dataclass(frozen=True)
class EndpointHealth:
    """One live endpoint as /metrics and the dashboard show it."""

    endpoint_id: str
    reseller_id: str
    disabled: bool
    delivered: int
    failed: int
    failed_attempts: int
    pending: int
    oldest_pending_at: datetime | None


@dataclass(eq=False)
class Endpoints:
    tables: WebhookTables
    box: SecretBox
    head: Callable[[], int | None]
    clock: Clock
    allow_private: bool
    resolve: addresses.Resolve = addresses.system_resolve

    def create(self, reseller_id: str, url: str, event_types: list[str]) -> Created:
        """Raises `addresses.UrlRefused` for a URL that may not be called, ValueError for an
        unknown message type."""
        unknown = [t for t in event_types if t not in TYPES]
        if unknown:
            raise ValueError(f"unknown message type {unknown[0]!r} (one of {', '.join(TYPES)})")
        addresses.check(url, self.allow_private, self.resolve)
        endpoint_id = str(uuid.uuid4())
        secret = new_secret()
        now = self.clock()
        t = self.tables.t
        with self.tables.datastore.transaction(commit=True) as curs:
            # Serialise a reseller's creations so the count below is a limit, not a guess.
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"wh:{reseller_id}",))
            row = curs.execute(
                f"SELECT count(*) AS n FROM {t('webhook_endpoints')}"
                " WHERE reseller_id = %s AND deleted_at IS NULL",
                (reseller_id,),
            ).fetchone()
            if row and row["n"] >= MAX_ENDPOINTS:
                raise TooManyEndpoints(f"A reseller may keep at most {MAX_ENDPOINTS} endpoints")
            # Between two router transactions: every event up to the head read now was routed
            # (or will be) without this endpoint, and every later one will see it committed.
            hold_the_router(curs)
            head = self.head() or 0
            curs.execute(
                f"INSERT INTO {t('webhook_endpoints')} (endpoint_id, reseller_id, url,"
                " event_types, secret, secret_key_id, created_at, created_position)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    endpoint_id,
                    reseller_id,
                    url,
                    sorted(set(event_types)),
                    self.box.seal(secret, endpoint_id),
                    self.box.key_id,
                    now,
                    head,
                ),
            )
        endpoint = Endpoint(
            endpoint_id, reseller_id, url, sorted(set(event_types)), now, None, None
        )
        return Created(endpoint, secret)

    def health(self, reseller_id: str = "") -> list[EndpointHealth]:
        return endpoint_health(self.tables, reseller_id)

    def list(self, reseller_id: str) -> list[Endpoint]:
        """A reseller's endpoints ('' = every reseller's), oldest first."""
        t = self.tables.t
        with self.tables.datastore.transaction(commit=False) as curs:
            rows = curs.execute(
                f"SELECT e.*, d.pending, d.oldest FROM {t('webhook_endpoints')} e"
                " LEFT JOIN LATERAL (SELECT count(*) AS pending, min(created_at) AS oldest"
                f" FROM {t('webhook_deliveries')} WHERE endpoint_id = e.endpoint_id"
                " AND state = 'pending') d ON true"
                " WHERE e.deleted_at IS NULL AND (%s = '' OR e.reseller_id = %s)"
                " ORDER BY e.created_at, e.endpoint_id",
                (reseller_id, reseller_id),
            ).fetchall()
        return [_endpoint(row) for row in rows]

    def get(self, endpoint_id: str, reseller_id: str | None) -> Endpoint:
        t = self.tables.t
        with self.tables.datastore.transaction(commit=False) as curs:
            row = curs.execute(
                f"SELECT * FROM {t('webhook_endpoints')} WHERE endpoint_id = %s",
                (endpoint_id,),
            ).fetchone()
        if row is None or (reseller_id is not None and row["reseller_id"] != reseller_id):
            raise EndpointNotFound("Webhook endpoint not found")
        return _endpoint(row)

    def delete(self, endpoint_id: str, reseller_id: str | None) -> tuple[bool, int]:
        """(deleted now, pending deliveries cancelled); deleting again changes nothing."""
        found = self.get(endpoint_id, reseller_id)
        t = self.tables.t
        with self.tables.datastore.transaction(commit=True) as curs:
            hold_the_router(curs)  # no routing in flight that still counts this endpoint live
            # Delivery rows before the endpoint's row, as the sender takes them (no lock cycle).
            cancelled = curs.execute(
                f"UPDATE {t('webhook_deliveries')} SET state = 'cancelled', leased_until = NULL"
                " WHERE endpoint_id = %s AND state = 'pending'",
                (found.endpoint_id,),
            ).rowcount
            row = curs.execute(
                f"UPDATE {t('webhook_endpoints')} SET deleted_at = %s"
                " WHERE endpoint_id = %s AND deleted_at IS NULL RETURNING endpoint_id",
                (self.clock(), found.endpoint_id),
            ).fetchone()
        return row is not None, cancelled

    def deliveries(
        self, endpoint_id: str, reseller_id: str | None, before_seq: int | None, size: int
    ) -> DeliveryPage:
        """Newest first; `before_seq` continues a page."""
        self.get(endpoint_id, reseller_id)
        t = self.tables.t
        with self.tables.datastore.transaction(commit=False) as curs:
            rows = curs.execute(
                f"SELECT * FROM {t('webhook_deliveries')} WHERE endpoint_id = %s"
                " AND (%s::bigint IS NULL OR seq < %s) ORDER BY seq DESC LIMIT %s",
                (endpoint_id, before_seq, before_seq, size + 1),
            ).fetchall()
            shown = rows[:size]
            attempts = curs.execute(
                "SELECT a.* FROM unnest(%s::text[]) m(id), LATERAL (SELECT * FROM"
                f" {t('webhook_attempts')} WHERE message_id = m.id ORDER BY id DESC"
                " LIMIT %s) a",
                ([r["message_id"] for r in shown], RECENT_ATTEMPTS),
            ).fetchall()
        by_message: dict[str, list[dict[str, Any]]] = {}
        for attempt in attempts:
            by_message.setdefault(attempt["message_id"], []).append(dict(attempt))
        return DeliveryPage([dict(r) for r in shown], by_message, len(rows) > size)

    def redeliver(
        self, endpoint_id: str, message_id: str, reseller_id: str | None
    ) -> dict[str, Any]:
        """Send the message again as soon as a sender is free, with the same id and body; its
        retry window starts afresh."""
        endpoint = self.get(endpoint_id, reseller_id)
        if endpoint.deleted_at is not None:
            raise EndpointDisabled("The endpoint was deleted")
        if endpoint.disabled_at is not None:
            raise EndpointDisabled(
                f"The endpoint is disabled ({endpoint.disabled_reason}); create a new one"
            )
        now = self.clock()
        t = self.tables.t
        with self.tables.datastore.transaction(commit=True) as curs:
            row = curs.execute(
                f"UPDATE {t('webhook_deliveries')} SET state = 'pending', next_attempt_at = %s,"
                " window_from = %s,"
                # A delivery being sent right now keeps its lease: no second sender meanwhile.
                " leased_until = CASE WHEN leased_until > %s THEN leased_until END"
                " WHERE endpoint_id = %s AND message_id = %s RETURNING *",
                (now, now, now, endpoint_id, message_id),
            ).fetchone()
        if row is None:
            raise DeliveryNotFound("No such message for this endpoint")
        return dict(row)


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        endpoint_id=str(row["endpoint_id"]),
        reseller_id=row["reseller_id"],
        url=row["url"],
        event_types=list(row["event_types"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        disabled_reason=row["disabled_reason"],
        deleted_at=row["deleted_at"],
        pending=int(row.get("pending") or 0),
        oldest_pending_at=row.get("oldest"),
    )


def endpoint_health(tables: WebhookTables, reseller_id: str = "") -> list[EndpointHealth]:
    """Every live endpoint's counts and backlog (one indexed read per endpoint)."""
    t = tables.t
    with tables.datastore.transaction(commit=False) as curs:
        rows = curs.execute(
            "SELECT e.endpoint_id, e.reseller_id, e.disabled_at IS NOT NULL AS disabled,"
            " e.delivered, e.failed, e.failed_attempts, d.pending, d.oldest"
            f" FROM {t('webhook_endpoints')} e LEFT JOIN LATERAL"
            " (SELECT count(*) AS pending, min(window_from) AS oldest"
            f" FROM {t('webhook_deliveries')} WHERE endpoint_id = e.endpoint_id"
            " AND state = 'pending') d ON true"
            " WHERE e.deleted_at IS NULL AND (%s = '' OR e.reseller_id = %s)"
            " ORDER BY e.reseller_id, e.created_at",
            (reseller_id, reseller_id),
        ).fetchall()
    return [
        EndpointHealth(
            str(r["endpoint_id"]),
            r["reseller_id"],
            r["disabled"],
            r["delivered"],
            r["failed"],
            r["failed_attempts"],
            int(r["pending"] or 0),
            r["oldest"],
        )
        for r in rows
    ]
