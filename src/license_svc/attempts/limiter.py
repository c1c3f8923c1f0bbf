"""The failed-attempt limiter of rules §4, durable in PostgreSQL and shared by every replica.

Every failed Validate/Activate is one row of `failed_attempts` (the audit trail: when, which
account and session, which method, why, and the key id when the code was well-formed — never
the code). A session is blocked while it has `session_limit` failures within the block window;
an account while it has `account_limit` failures within its window. Both are sliding windows,
answered by one indexed query, so the block lifts by itself and replicas need no coordination.

Concurrent attempts cannot slip past the limit: `begin` checks and reserves in one transaction
under a per-account advisory lock, and the reservation (a row whose reason is IN_FLIGHT) counts
as a failure until the attempt ends — `failed` gives it its reason, `ended` deletes it. An
attacker firing a hundred guesses at once in one session gets five of them tried, as one firing
them one by one does.

One timeline: the time of an attempt is read under the lock, from the database's clock, so the
order of the rows is the order of the lock and every replica counts against the same clock,
whatever its own host's clock says. (A test injects its own clock instead; it is then read
before the call, and the count does not rely on it: every row younger than the window counts,
including one stamped "in the future" by a skewed clock, so no reservation is ever invisible.)

A reservation whose server died mid-attempt counts for `in_flight_ttl` (a few minutes, far
longer than any attempt runs) and then no longer. Reservations and their deletions commit
asynchronously (a crash can only lose one together with the attempt it guarded); failures
commit synchronously.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Composed, Identifier, Literal

from license_svc.adapters.clock import Clock

IN_FLIGHT = "IN_FLIGHT"
LOCK_NAMESPACE = 0x4C53  # pg_advisory_xact_lock(namespace, hashtext(account_id))


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
    # An attempt runs for milliseconds (its call's deadline at most): a reservation this old
    # belongs to a server that died mid-attempt, and stops counting.
    in_flight_ttl: timedelta = timedelta(minutes=5)


class AttemptLimiter:
    def __init__(
        self, datastore: PostgresDatastore, limits: Limits, clock: Clock | None = None
    ) -> None:
        """`clock=None`: the database's clock (production); a test passes its own."""
        self._datastore = datastore
        self._limits = limits
        self._clock = clock
        table = SQL("{}.failed_attempts").format(Identifier(datastore.schema))
        reserve = Identifier(datastore.schema, "license_svc_reserve_attempt")
        end = Identifier(datastore.schema, "license_svc_end_attempt")
        self._create = [
            *(
                SQL(statement).format(t=table)
                for statement in (
                    "CREATE TABLE IF NOT EXISTS {t} ("
                    " id bigserial PRIMARY KEY,"
                    " at timestamptz NOT NULL,"
                    " account_id text NOT NULL,"
                    " session_id text NOT NULL,"
                    " method text NOT NULL,"
                    " reason text NOT NULL,"
                    " key_id uuid)",
                    "CREATE INDEX IF NOT EXISTS failed_attempts_session_idx"
                    " ON {t} (account_id, session_id, at)",
                    "CREATE INDEX IF NOT EXISTS failed_attempts_account_idx"
                    " ON {t} (account_id, at)",
                    "CREATE INDEX IF NOT EXISTS failed_attempts_at_idx ON {t} (at)",
                )
            ),
            # A failure forgiven by support (attempt_upkeep.lift_block) names its lift and no
            # longer counts. Added only when missing: ALTER TABLE would lock the table at
            # every start.
            SQL(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM information_schema.columns"
                " WHERE table_schema = {schema} AND table_name = 'failed_attempts'"
                " AND column_name = 'lift_id')"
                " THEN ALTER TABLE {t} ADD COLUMN lift_id bigint; END IF; END $$"
            ).format(t=table, schema=Literal(datastore.schema)),
            SQL(
                "CREATE TABLE IF NOT EXISTS {lifts} ("
                " id bigserial PRIMARY KEY,"
                " at timestamptz NOT NULL,"
                " account_id text NOT NULL,"
                " session_id text NOT NULL,"  # '' = every session of the account
                " lifted_by text NOT NULL,"
                " reason text NOT NULL,"
                " lifted integer NOT NULL DEFAULT 0)"
            ).format(lifts=SQL("{}.attempt_block_lifts").format(Identifier(datastore.schema))),
            # Check and reserve, in one round trip. In a VOLATILE function each statement
            # takes a fresh snapshot, so the one that counts, coming after the lock, sees every
            # reservation committed by those who held the lock before; and the time is read
            # after the lock too, so it is never earlier than theirs. A row counts until it
            # `lifts` (its time plus its window); the block lifts when fewer than the limit
            # are left, i.e. at the limit-th latest lift. For each blocked scope it returns
            # that time; else the attempt's reservation. Both carry the `now` it counted at.
            SQL(
                "CREATE OR REPLACE FUNCTION {reserve}("
                " p_account text, p_session text, p_method text, p_now timestamptz,"
                " p_session_window interval, p_account_window interval,"
                " p_session_offset integer, p_account_offset integer, p_in_flight_ttl interval)"
                " RETURNS TABLE (scope text, lifts timestamptz, id bigint, counted_at timestamptz)"
                " LANGUAGE plpgsql VOLATILE AS $$"
                " #variable_conflict use_column\n"
                " DECLARE v_now timestamptz;"
                " BEGIN"
                "  PERFORM set_config('synchronous_commit', 'off', true);"
                "  PERFORM pg_advisory_xact_lock({namespace}, hashtext(p_account));"
                "  v_now := coalesce(p_now, clock_timestamp());"
                "  RETURN QUERY"
                "  WITH live AS ("
                "   SELECT f.session_id, f.at, f.at + CASE WHEN f.reason = {in_flight}"
                "     THEN least(p_account_window, p_in_flight_ttl) ELSE p_account_window"
                "     END AS account_lifts, f.at + CASE WHEN f.reason = {in_flight}"
                "     THEN least(p_session_window, p_in_flight_ttl) ELSE p_session_window"
                "     END AS session_lifts"
                "   FROM {t} f WHERE f.account_id = p_account AND f.lift_id IS NULL"
                "     AND f.at > v_now - greatest(p_session_window, p_account_window)),"
                "  blocking AS ("
                "   (SELECT 's' AS scope, r.session_lifts AS lifts FROM live r"
                "     WHERE r.session_id = p_session AND r.session_lifts > v_now"
                "     ORDER BY r.session_lifts DESC OFFSET p_session_offset LIMIT 1)"
                "   UNION ALL"
                "   (SELECT 'a' AS scope, r.account_lifts AS lifts FROM live r"
                "     WHERE r.account_lifts > v_now"
                "     ORDER BY r.account_lifts DESC OFFSET p_account_offset LIMIT 1)),"
                "  reserved AS ("
                "   INSERT INTO {t} (at, account_id, session_id, method, reason)"
                "   SELECT v_now, p_account, p_session, p_method, {in_flight}"
                "   WHERE NOT EXISTS (SELECT FROM blocking) RETURNING {t}.id)"
                "  SELECT b.scope, b.lifts, NULL::bigint, v_now FROM blocking b"
                "  UNION ALL SELECT NULL, NULL, r.id, v_now FROM reserved r;"
                " END $$"
            ).format(
                reserve=reserve,
                t=table,
                namespace=Literal(LOCK_NAMESPACE),
                in_flight=Literal(IN_FLIGHT),
            ),
            SQL(
                "CREATE OR REPLACE FUNCTION {end}(p_id bigint) RETURNS void"
                " LANGUAGE plpgsql VOLATILE AS $$"
                " BEGIN"
                "  PERFORM set_config('synchronous_commit', 'off', true);"
                "  DELETE FROM {t} WHERE id = p_id;"
                " END $$"
            ).format(end=end, t=table),
        ]
        # Rendered once: composing them on every call costs a tenth of a check's client time.
        self._begin = (
            SQL("SELECT scope, lifts, id, counted_at FROM {}(%s, %s, %s, %s, %s, %s, %s, %s, %s)")
            .format(reserve)
            .as_bytes()
        )
        self._end = SQL("SELECT {}(%s)").format(end).as_bytes()
        self._fail = (
            SQL("UPDATE {t} SET reason = %s, key_id = %s WHERE id = %s").format(t=table).as_bytes()
        )

    @property
    def datastore(self) -> PostgresDatastore:
        return self._datastore

    @property
    def limits(self) -> Limits:
        return self._limits

    def now(self) -> datetime | None:
        """The injected clock's time, or None: the database's clock then, read under the lock."""
        return self._clock() if self._clock is not None else None

    def create_table(self) -> None:
        with self._datastore.transaction(commit=True) as curs:
            for statement in self._create:
                curs.execute(statement)

    def begin(self, account_id: str, session_id: str, method: str) -> int:
        """Reserve an attempt (its id), or raise TooManyAttempts while the session or the
        account is blocked. Every attempt begun must be `failed` or `ended`."""
        limits = self._limits
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self._begin,
                (
                    account_id,
                    session_id,
                    method,
                    self.now(),
                    limits.session_window,
                    limits.account_window,
                    limits.session_limit - 1,
                    limits.account_limit - 1,
                    limits.in_flight_ttl,
                ),
                prepare=True,
            )
            rows = curs.fetchall()
        reserved = [row["id"] for row in rows if row["id"] is not None]
        if reserved:
            return int(reserved[0])
        lifts_at = max(row["lifts"] for row in rows)
        retry_after = lifts_at - rows[0]["counted_at"]
        raise TooManyAttempts(retry_after=max(retry_after, timedelta(seconds=1)))

    def failed(self, attempt: int, reason: str, key_id: UUID | None = None) -> None:
        """The attempt failed: its row stays, with the reason, for the limit and the audit."""
        with self._datastore.get_connection() as conn:  # one statement: its own transaction
            conn.execute(self._fail, (reason, key_id, attempt), prepare=True)

    def ended(self, attempt: int) -> None:
        """The attempt did not fail (it succeeded, or the service could not answer it)."""
        with self._datastore.get_connection() as conn:
            conn.execute(self._end, (attempt,), prepare=True)

    def recorded(self, account_id: str) -> list[dict[str, object]]:
        """The audit trail of one account's failures, oldest first."""
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT at, account_id, session_id, method, reason, key_id, lift_id"
                    " FROM {}.failed_attempts WHERE account_id = %s ORDER BY id"
                ).format(Identifier(self._datastore.schema)),
                (account_id,),
            )
            return [dict(row) for row in curs.fetchall()]

    def failures_by_reason(self, within: timedelta) -> dict[str, int]:
        """Failures of the last `within` by reason, most frequent first, for the ops dashboard
        (reservations of attempts still running are not failures)."""
        with self._datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT reason, count(*) AS n FROM {}.failed_attempts"
                    " WHERE reason <> %s AND at > coalesce(%s::timestamptz, now()) - %s"
                    " GROUP BY reason ORDER BY n DESC, reason"
                ).format(Identifier(self._datastore.schema)),
                (IN_FLIGHT, self._clock() if self._clock is not None else None, within),
            )
            return {row["reason"]: int(row["n"]) for row in curs.fetchall()}


def blocked_sessions_query(schema: str) -> Composed:
    """Sessions blocked now, for /metrics (any role may run it, the read-only one included),
    with the parameters (block window, IN_FLIGHT, session limit): on the database's clock, the
    limiter's timeline; recorded failures only (a reservation of an attempt in flight counts
    for the limiter, not here; nor does a failure that support forgave, `lift_id`)."""
    return SQL(
        "SELECT count(*) FROM (SELECT 1 FROM {}.failed_attempts"
        " WHERE at > clock_timestamp() - %s AND reason <> %s AND lift_id IS NULL"
        " GROUP BY account_id, session_id HAVING count(*) >= %s) AS b"
    ).format(Identifier(schema))
