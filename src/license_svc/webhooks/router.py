"""From the store's log to deliveries: a tracked subscription, and the 14-days reminders.

`Router.route_once` is one transaction: it reads the tracking position, reads the events after
it from the log, records what they mean (keys, batches, deliveries) and the new tracking
position, and commits. A crash anywhere before the commit leaves nothing behind, and the next
run reads the same events again: nothing missed, nothing doubled. One router transaction runs
at a time across every process (a transaction-level advisory lock; a second router skips its
turn), and the tracking row refuses a position that is not above the recorded one.

Positions are the store's notification ids; writers assign them under the events table's lock
and commit before releasing it, so reading `> position` never skips an event that commits later.

`Reminders.remind_once` records `subscription.expiring_soon` for every activated key whose period
ends within REMIND_BEFORE, once per key: the `webhook_reminders` primary key decides which of
two racing sweepers records it, in the same transaction as its deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking
from psycopg import Cursor
from psycopg.rows import DictRow

from license_svc.adapters.application import EventStore
from license_svc.adapters.clock import Clock
from license_svc.domain.key import ActivationKey

from . import messages as m
from .messages import KeyFacts, Message
from .tables import APP_NAME, ROUTER_LOCK, WebhookTables, hold_the_router

BATCH = 500  # events per router transaction
REMIND_BEFORE = timedelta(days=14)
REMIND_BATCH = 500


class Router:
    def __init__(self, tables: WebhookTables, store: EventStore, clock: Clock) -> None:
        self._tables = tables
        self._store = store
        self._clock = clock

    @property
    def tables(self) -> WebhookTables:
        return self._tables

    @property
    def clock(self) -> Clock:
        return self._clock

    def route_once(self, limit: int = BATCH) -> tuple[int, int]:
        """(events read, deliveries recorded) by one transaction; (0, 0) when another router
        holds the turn or nothing is new."""
        with self._tables.datastore.transaction(commit=True) as curs:
            row = curs.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", (ROUTER_LOCK,))
            got = row.fetchone()
            if not got or not got["got"]:
                return 0, 0
            position = self._tables.position_in(curs)
            events = self._store.recorder.select_notifications(
                position + 1, limit, inclusive_of_start=True
            )
            if not events:
                return 0, 0
            found = self._messages(curs, events)
            recorded = self._tables.insert_deliveries(
                curs, addressed(curs, self._tables, found, self._clock())
            )
            self._tables._insert_tracking(curs, Tracking(APP_NAME, events[-1].id))
        return len(events), recorded

    def _messages(self, curs: Cursor[DictRow], events: Sequence[Notification]) -> list[Message]:
        t = self._tables.t
        decoded = [(n.id, self._store.mapper.to_domain_event(n)) for n in events]
        issued = [(p, e) for p, e in decoded if isinstance(e, ActivationKey.KeyIssued)]
        keys: dict[UUID, KeyFacts] = {}
        if issued:
            curs.executemany(
                f"INSERT INTO {t('webhook_keys')} (key_id, reseller_id, product, tier, seats,"
                " hint, batch_id, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'issued')"
                " ON CONFLICT (key_id) DO NOTHING",
                [
                    (e.originator_id, e.reseller_id, e.product, e.tier, e.seats, e.hint, e.batch_id)
                    for _, e in issued
                ],
            )
        others = list({e.originator_id for _, e in decoded if _is_key_change(e)})
        if others:
            rows = curs.execute(
                f"SELECT * FROM {t('webhook_keys')} WHERE key_id = ANY(%s)", (others,)
            ).fetchall()
            keys = {row["key_id"]: _facts(row) for row in rows}
        found = self._batches(curs, issued)
        changed: dict[UUID, KeyFacts] = {}
        for position, event in decoded:
            key = keys.get(event.originator_id)
            if key is None or not _is_key_change(event):
                continue  # a plan's event, or a key issued before the router's tables
            key, message = _apply(key, position, event)
            keys[event.originator_id] = changed[event.originator_id] = key
            found.append(message)
        if changed:
            curs.executemany(
                f"UPDATE {t('webhook_keys')} SET account_id = %s, period_starts_at = %s,"
                " period_ends_at = %s, activated_position = %s, status = %s WHERE key_id = %s",
                [
                    (
                        k.account_id,
                        k.period_starts_at,
                        k.period_ends_at,
                        k.activated_position,
                        k.status,
                        key_id,
                    )
                    for key_id, k in changed.items()
                ],
            )
        return found

    def _batches(
        self, curs: Cursor[DictRow], issued: list[tuple[int, ActivationKey.KeyIssued]]
    ) -> list[Message]:
        """One `batch.issued` per batch: the first piece of a batch the router reads records
        it; a later piece (a batch read across two transactions) finds the row."""
        first: dict[str, tuple[int, ActivationKey.KeyIssued]] = {}
        for position, event in issued:
            first.setdefault(event.batch_id, (position, event))
        found = []
        t = self._tables.t
        for batch_id, (position, event) in first.items():
            row = curs.execute(
                f"INSERT INTO {t('webhook_batches')} (batch_id, position) VALUES (%s, %s)"
                " ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id",
                (batch_id, position),
            ).fetchone()
            if row is None:
                continue
            count = curs.execute(
                f"SELECT count FROM {t('issue_requests')} WHERE reseller_id = %s"
                " AND batch_id::text = %s LIMIT 1",
                (event.reseller_id, batch_id),
            ).fetchone()
            data: dict[str, Any] = {
                "batch_id": batch_id,
                "reseller_id": event.reseller_id,
                "product": event.product,
                "tier": event.tier,
                "seats": event.seats,
                "period_months": event.period_months,
                "count": int(count["count"]) if count else None,
                "position": position,
            }
            found.append(
                Message(m.BATCH_ISSUED, position, event.reseller_id, event.timestamp, data)
            )
        return found


def _is_key_change(event: object) -> bool:
    return isinstance(
        event,
        ActivationKey.KeyActivated | ActivationKey.KeyRevoked | ActivationKey.SubscriptionExpired,
    )


def _apply(key: KeyFacts, position: int, event: Any) -> tuple[KeyFacts, Message]:
    if isinstance(event, ActivationKey.KeyActivated):
        key = replace(
            key,
            account_id=event.account_id,
            period_starts_at=event.period_starts_at,
            period_ends_at=event.period_ends_at,
            activated_position=position,
            status="activated",
        )
        data = {**key.data(position), "activated_at": m.instant(event.activated_at)}
        return key, Message(m.KEY_ACTIVATED, position, key.reseller_id, event.timestamp, data)
    if isinstance(event, ActivationKey.KeyRevoked):
        key = replace(key, status="revoked")
        data = {**key.data(position), "revoked_at": m.instant(event.revoked_at)}
        return key, Message(m.KEY_REVOKED, position, key.reseller_id, event.timestamp, data)
    key = replace(key, status="expired")
    data = {**key.data(position), "expired_at": m.instant(event.expired_at)}
    return key, Message(m.KEY_EXPIRED, position, key.reseller_id, event.timestamp, data)


def _facts(row: Any) -> KeyFacts:
    return KeyFacts(
        key_id=str(row["key_id"]),
        reseller_id=row["reseller_id"],
        product=row["product"],
        tier=row["tier"],
        seats=row["seats"],
        hint=row["hint"],
        batch_id=row["batch_id"],
        account_id=row["account_id"],
        period_starts_at=row["period_starts_at"],
        period_ends_at=row["period_ends_at"],
        activated_position=row["activated_position"],
        status=row["status"],
    )


def addressed(
    curs: Cursor[DictRow],
    tables: WebhookTables,
    found: list[Message],
    now: datetime,
    *,
    any_age: bool = False,
) -> list[dict[str, Any]]:
    """The deliveries of `found`: one per message and live endpoint of its reseller that wants
    its type and was created before its position (`any_age`: every live endpoint)."""
    resellers = list({message.reseller_id for message in found})
    if not resellers:
        return []
    endpoints = curs.execute(
        f"SELECT endpoint_id, reseller_id, event_types, created_position"
        f" FROM {tables.t('webhook_endpoints')} WHERE reseller_id = ANY(%s)"
        " AND deleted_at IS NULL AND disabled_at IS NULL",
        (resellers,),
    ).fetchall()
    rows = []
    for message in found:
        for e in endpoints:
            if e["reseller_id"] != message.reseller_id:
                continue
            if e["event_types"] and message.type not in e["event_types"]:
                continue
            if not any_age and e["created_position"] >= message.position:
                continue
            endpoint_id = str(e["endpoint_id"])
            message_id, body = message.body(endpoint_id)
            rows.append(
                {
                    "message_id": message_id,
                    "endpoint_id": endpoint_id,
                    "event_type": message.type,
                    "position": message.position,
                    "body": body,
                    "now": now,
                }
            )
    return rows


class Reminders:
    def __init__(self, tables: WebhookTables, clock: Clock) -> None:
        self._tables = tables
        self._clock = clock

    def remind_once(self) -> int:
        """Keys reminded by this call (each key once, ever)."""
        now = self._clock()
        t = self._tables.t
        with self._tables.datastore.transaction(commit=True) as curs:
            hold_the_router(curs)  # endpoints stay as they are while deliveries are addressed
            rows = curs.execute(
                f"INSERT INTO {t('webhook_reminders')} (key_id, reminded_at)"
                f" SELECT k.key_id, %s FROM {t('webhook_keys')} k WHERE k.status = 'activated'"
                " AND k.period_ends_at > %s AND k.period_ends_at <= %s AND NOT EXISTS"
                f" (SELECT 1 FROM {t('webhook_reminders')} r WHERE r.key_id = k.key_id)"
                " ORDER BY k.period_ends_at LIMIT %s ON CONFLICT (key_id) DO NOTHING"
                " RETURNING key_id",
                (now, now, now + REMIND_BEFORE, REMIND_BATCH),
            ).fetchall()
            if not rows:
                return 0
            keys = curs.execute(
                f"SELECT * FROM {t('webhook_keys')} WHERE key_id = ANY(%s)",
                ([r["key_id"] for r in rows],),
            ).fetchall()
            found = []
            for row in keys:
                key = _facts(row)
                position = int(key.activated_position or 0)
                data = {**key.data(position), "days_left": (key.period_ends_at - now).days}  # type: ignore[operator]
                found.append(Message(m.EXPIRING_SOON, position, key.reseller_id, now, data))
            self._tables.insert_deliveries(
                curs, addressed(curs, self._tables, found, now, any_age=True)
            )
        return len(rows)
