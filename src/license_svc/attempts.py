"""The failed-attempt limiter of SPEC §4, durable in PostgreSQL and shared by every replica.

Every failed Validate/Activate is one row of `failed_attempts` (the audit trail: when, which
account and session, which method, why, and the key id when the code was well-formed — never
the code). A session is blocked while it has `session_limit` failures within the block window;
an account while it has `account_limit` failures within its window. Both are sliding windows,
answered by one indexed query, so the block lifts by itself and replicas need no coordination.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from license_svc.application import Clock


class TooManyAttempts(Exception):
    def __init__(self, retry_after: timedelta) -> None:
        super().__init__("Too many failed attempts")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    session_limit: int = 5
    session_window: timedelta = timedelta(minutes=15)
    account_limit: int = 20
    account_window: timedelta = timedelta(hours=1)


class AttemptLimiter:
    def __init__(self, datastore: PostgresDatastore, limits: Limits, clock: Clock) -> None:
        self._datastore = datastore
        self._limits = limits
        self._clock = clock
        table = SQL("{}.failed_attempts").format(Identifier(datastore.schema))
        self._create = [
            SQL(
                "CREATE TABLE IF NOT EXISTS {t} ("
                " id bigserial PRIMARY KEY,"
                " at timestamptz NOT NULL,"
                " account_id text NOT NULL,"
                " session_id text NOT NULL,"
                " method text NOT NULL,"
                " reason text NOT NULL,"
                " key_id uuid)"
            ).format(t=table),
            SQL(
                "CREATE INDEX IF NOT EXISTS failed_attempts_session_idx"
                " ON {t} (account_id, session_id, at)"
            ).format(t=table),
            SQL(
                "CREATE INDEX IF NOT EXISTS failed_attempts_account_idx ON {t} (account_id, at)"
            ).format(t=table),
        ]
        insert = SQL(
            "INSERT INTO {t} (at, account_id, session_id, method, reason, key_id)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
        ).format(t=table)
        # For each scope: the failure whose leaving the window would lift the block, if any.
        # With N failures in the window and limit L, that is the L-th most recent one.
        blocking = SQL(
            "(SELECT 's' AS scope, at FROM {t}"
            "  WHERE account_id = %(account)s AND session_id = %(session)s"
            "    AND at > %(session_since)s AND at <= %(now)s"
            "  ORDER BY at DESC OFFSET %(session_offset)s LIMIT 1)"
            " UNION ALL "
            "(SELECT 'a' AS scope, at FROM {t}"
            "  WHERE account_id = %(account)s AND at > %(account_since)s AND at <= %(now)s"
            "  ORDER BY at DESC OFFSET %(account_offset)s LIMIT 1)"
        ).format(t=table)
        # Rendered once: composing them on every call costs a tenth of a check's client time.
        self._insert, self._blocking = insert.as_bytes(), blocking.as_bytes()

    def create_table(self) -> None:
        with self._datastore.transaction(commit=True) as curs:
            for statement in self._create:
                curs.execute(statement)

    def check(self, account_id: str, session_id: str) -> None:
        """Raise TooManyAttempts while the session or the account is blocked."""
        now = self._clock()
        limits = self._limits
        params = {
            "account": account_id,
            "session": session_id,
            "now": now,
            "session_since": now - limits.session_window,
            "account_since": now - limits.account_window,
            "session_offset": limits.session_limit - 1,
            "account_offset": limits.account_limit - 1,
        }
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._blocking, params, prepare=True)
            rows = curs.fetchall()
        if not rows:
            return
        window = {"s": limits.session_window, "a": limits.account_window}
        lifts_at = max(row["at"] + window[row["scope"]] for row in rows)
        raise TooManyAttempts(retry_after=max(lifts_at - now, timedelta(seconds=1)))

    def record_failure(
        self,
        *,
        account_id: str,
        session_id: str,
        method: str,
        reason: str,
        key_id: UUID | None = None,
    ) -> None:
        with self._datastore.transaction(commit=True) as curs:
            curs.execute(
                self._insert,
                (self._clock(), account_id, session_id, method, reason, key_id),
                prepare=True,
            )

    def recorded(self, account_id: str) -> list[dict[str, object]]:
        """The audit trail of one account's failures, oldest first."""
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT at, account_id, session_id, method, reason, key_id"
                    " FROM {}.failed_attempts WHERE account_id = %s ORDER BY id"
                ).format(Identifier(self._datastore.schema)),
                (account_id,),
            )
            return [dict(row) for row in curs.fetchall()]
