"""The room's tables, owned by one tracking recorder (the router's position lives beside them).

- `webhook_endpoints`: a reseller's URL, the message types it wants, its sealed secret, the store
  position it was created at (it hears of events after that), whether it is disabled (it
  answered 410) or deleted (kept, so its delivery log stays readable), and its counts of
  deliveries delivered and failed and of failed attempts (for /metrics, read without a scan).
- `webhook_keys`: what the router remembers of each key (reseller, tier, seats, hint, account,
  period): `KeyActivated`, `KeyRevoked` and `SubscriptionExpired` do not name the reseller.
- `webhook_batches`: one row per issued batch, so `batch.issued` is recorded once per batch even
  when a batch's events are read in several pieces.
- `webhook_reminders`: one row per key reminded 14 days before its period ends; its primary key
  makes the reminder exactly once, whatever number of sweepers race for it.
- `webhook_deliveries`: one row per (message, endpoint), keyed by the message id; its state, the
  next attempt, the sender's lease.
- `webhook_attempts`: every attempt: when, HTTP status, latency, error.

Finished deliveries and their attempts are kept `LICENSE_SVC_WEBHOOK_RETENTION_DAYS` (30), then
deleted in batches by every webhooks process (`purge_finished`); pending ones are never deleted.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from eventsourcing.postgres import PostgresDatastore, PostgresRecorder, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

TRACKING_TABLE = "webhooks_tracking"
APP_NAME = "licensing"  # the store application's name, under which positions are tracked
DDL_LOCK = zlib.crc32(b"license-svc/webhooks/ddl")
# One router transaction at a time across every process (see `router.py`).
ROUTER_LOCK = zlib.crc32(b"license-svc/webhooks/router")
PURGE_BATCH = 1_000  # finished deliveries deleted per transaction by the retention

_TABLES = [
    """CREATE TABLE IF NOT EXISTS {s}.webhook_endpoints (
        endpoint_id uuid PRIMARY KEY,
        reseller_id text NOT NULL,
        url text NOT NULL,
        event_types text[] NOT NULL,
        secret bytea NOT NULL,
        secret_key_id text NOT NULL,
        created_at timestamptz NOT NULL,
        created_position bigint NOT NULL,
        disabled_at timestamptz,
        disabled_reason text,
        deleted_at timestamptz,
        delivered bigint NOT NULL DEFAULT 0,
        failed bigint NOT NULL DEFAULT 0,
        failed_attempts bigint NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS webhook_endpoints_reseller"
    " ON {s}.webhook_endpoints (reseller_id) WHERE deleted_at IS NULL",
    """CREATE TABLE IF NOT EXISTS {s}.webhook_keys (
        key_id uuid PRIMARY KEY,
        reseller_id text NOT NULL,
        product text NOT NULL,
        tier text NOT NULL,
        seats integer NOT NULL,
        hint text NOT NULL,
        batch_id text NOT NULL,
        account_id text,
        period_starts_at timestamptz,
        period_ends_at timestamptz,
        activated_position bigint,
        status text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS webhook_keys_ending"
    " ON {s}.webhook_keys (period_ends_at) WHERE status = 'activated'",
    """CREATE TABLE IF NOT EXISTS {s}.webhook_batches (
        batch_id text PRIMARY KEY,
        position bigint NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.webhook_reminders (
        key_id uuid PRIMARY KEY,
        reminded_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.webhook_deliveries (
        message_id text PRIMARY KEY,
        seq bigserial UNIQUE,
        endpoint_id uuid NOT NULL,
        event_type text NOT NULL,
        position bigint NOT NULL,
        body bytea NOT NULL,
        created_at timestamptz NOT NULL,
        window_from timestamptz NOT NULL,
        state text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        leased_until timestamptz,
        lease_owner text,
        last_status integer,
        last_error text,
        delivered_at timestamptz)""",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due"
    " ON {s}.webhook_deliveries (next_attempt_at) WHERE state = 'pending'",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_pending_by_endpoint"
    " ON {s}.webhook_deliveries (endpoint_id, window_from) WHERE state = 'pending'",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_finished"
    " ON {s}.webhook_deliveries (created_at) WHERE state <> 'pending'",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_by_endpoint"
    " ON {s}.webhook_deliveries (endpoint_id, seq DESC)",
    """CREATE TABLE IF NOT EXISTS {s}.webhook_attempts (
        id bigserial PRIMARY KEY,
        message_id text NOT NULL,
        endpoint_id uuid NOT NULL,
        attempt integer NOT NULL,
        started_at timestamptz NOT NULL,
        status integer,
        latency_ms integer NOT NULL,
        error text)""",
    "CREATE INDEX IF NOT EXISTS webhook_attempts_of ON {s}.webhook_attempts (message_id, id DESC)",
]


def hold_the_router(curs: Cursor[DictRow]) -> None:
    """Wait for the router's transaction in flight, and keep the next one out until this
    transaction ends: a change to the endpoints then falls between two routings, never into
    one (an endpoint the router loaded just before it was deleted would get deliveries)."""
    curs.execute("SELECT pg_advisory_xact_lock(%s)", (ROUTER_LOCK,))


class WebhookTables(PostgresTrackingRecorder):
    """The tables of this room and the router's tracking position, on the store's datastore."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore, tracking_table_name=TRACKING_TABLE)
        self.schema = datastore.schema or "public"
        schema = f'"{self.schema}"'
        statements: list[Any] = [SQL(s.format(s=schema)) for s in _TABLES]  # type: ignore[arg-type]
        self.sql_create_statements.extend(statements)

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK,))
            try:
                found = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL AS found",
                    (f'"{self.schema}"."{TRACKING_TABLE}"',),
                ).fetchone()
                if found and found["found"]:
                    super().create_table()
                else:  # no migration check on a fresh table (it logs an ERROR in PostgreSQL)
                    PostgresRecorder.create_table(self)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (DDL_LOCK,))

    def t(self, name: str) -> str:
        """A table's qualified name (names are this module's constants, never input)."""
        return f'"{self.schema}"."{name}"'

    def position_in(self, curs: Cursor[DictRow]) -> int:
        # The library keeps a row of its own in a tracking table (`__migration__`): only the
        # store's application counts.
        row = curs.execute(
            f"SELECT coalesce(max(notification_id), 0) AS p FROM {self.t(TRACKING_TABLE)}"
            " WHERE application_name = %s",
            (APP_NAME,),
        ).fetchone()
        return int(row["p"]) if row else 0

    def position(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            return self.position_in(curs)

    def insert_deliveries(self, curs: Cursor[DictRow], rows: list[dict[str, Any]]) -> int:
        """Record deliveries; a message id recorded before is left as it is."""
        if not rows:
            return 0
        curs.executemany(
            f"INSERT INTO {self.t('webhook_deliveries')} (message_id, endpoint_id, event_type,"
            " position, body, created_at, window_from, state, next_attempt_at) VALUES"
            " (%(message_id)s, %(endpoint_id)s, %(event_type)s, %(position)s, %(body)s,"
            " %(now)s, %(now)s, 'pending', %(now)s) ON CONFLICT (message_id) DO NOTHING",
            rows,
        )
        return len(rows)

    def purge_finished(self, before: datetime, limit: int = PURGE_BATCH) -> int:
        """Delete up to `limit` finished deliveries (delivered, failed, cancelled) recorded
        before `before`, with their attempts; pending ones are never touched. The count."""
        t = self.t
        with self.datastore.transaction(commit=True) as curs:
            row = curs.execute(
                f"WITH gone AS (DELETE FROM {t('webhook_deliveries')} WHERE message_id IN"
                f" (SELECT message_id FROM {t('webhook_deliveries')} WHERE state <> 'pending'"
                " AND created_at < %s ORDER BY created_at LIMIT %s) RETURNING message_id),"
                f" tried AS (DELETE FROM {t('webhook_attempts')} a USING gone"
                " WHERE a.message_id = gone.message_id RETURNING 1)"
                " SELECT (SELECT count(*) FROM gone) AS n, (SELECT count(*) FROM tried) AS m",
                (before, limit),
            ).fetchone()
        return int(row["n"]) if row else 0
