"""The limiter's housekeeping (issue 8): support lifting a block, and the retention of the audit.

Lifting a block forgives the failures that count now: each is marked with the lift that forgave
it (`failed_attempts.lift_id`), so it stays in the audit trail but no longer counts, and the
lift itself is one row of `attempt_block_lifts`: when, which account (and session, or '' for
every session of the account), who lifted it and why, and how many failures it forgave. It runs
under the account's advisory lock, on the limiter's timeline, so it is ordered with the
attempts it races.

Retention: failed attempts and lifts older than `retention` (90 days by default, never less
than the limiter's windows) are deleted in batches, each its own short transaction, by the
sweeper's process (a `Periodic` thread: `bootstrap.start_sweeper`) and by `license-svc
attempts purge`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg.sql import SQL, Composed, Identifier

from license_svc.attempts.limiter import LOCK_NAMESPACE, AttemptLimiter

log = logging.getLogger("license_svc.attempts.limiter")

DEFAULT_RETENTION = timedelta(days=90)
PURGE_BATCH = 1000  # rows per DELETE: each batch a short transaction of its own


@dataclass(frozen=True)
class Lift:
    id: int
    at: datetime
    lifted: int  # failed attempts no longer counted


def _tables(limiter: AttemptLimiter) -> tuple[Composed, Composed]:
    schema = Identifier(limiter.datastore.schema)
    return (
        SQL("{}.failed_attempts").format(schema),
        SQL("{}.attempt_block_lifts").format(schema),
    )


def lift_block(
    limiter: AttemptLimiter, account_id: str, session_id: str, *, by: str, reason: str
) -> Lift:
    """Forgive the failures that count against a session (`session_id`) or a whole account
    (`session_id=''`: every session of it); recorded with who lifted it and why."""
    attempts, lifts = _tables(limiter)
    limits = limiter.limits
    window = max(limits.session_window, limits.account_window)
    with limiter.datastore.transaction(commit=True) as curs:
        curs.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, account_id))
        curs.execute(
            SQL(
                "INSERT INTO {lifts} (at, account_id, session_id, lifted_by, reason)"
                " VALUES (coalesce(%s::timestamptz, clock_timestamp()), %s, %s, %s, %s)"
                " RETURNING id, at"
            ).format(lifts=lifts),
            (limiter.now(), account_id, session_id, by, reason),
        )
        row = curs.fetchone()
        assert row is not None
        curs.execute(
            SQL(
                "UPDATE {t} SET lift_id = %s WHERE account_id = %s"
                " AND (%s = '' OR session_id = %s) AND lift_id IS NULL AND at > %s"
            ).format(t=attempts),
            (row["id"], account_id, session_id, session_id, row["at"] - window),
        )
        lifted = max(curs.rowcount, 0)
        curs.execute(
            SQL("UPDATE {lifts} SET lifted = %s WHERE id = %s").format(lifts=lifts),
            (lifted, row["id"]),
        )
    scope = f"session {session_id} of account {account_id}" if session_id else account_id
    log.info("attempt block of %s lifted by %s (%d failures): %s", scope, by, lifted, reason)
    return Lift(int(row["id"]), row["at"], lifted)


def lifts_of(limiter: AttemptLimiter, account_id: str) -> list[dict[str, object]]:
    """The lifts of one account's blocks, oldest first (the audit trail of support's acts)."""
    _, lifts = _tables(limiter)
    with limiter.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(
            SQL(
                "SELECT id, at, account_id, session_id, lifted_by, reason, lifted"
                " FROM {lifts} WHERE account_id = %s ORDER BY id"
            ).format(lifts=lifts),
            (account_id,),
        )
        return [dict(row) for row in curs.fetchall()]


def purge(
    limiter: AttemptLimiter, retention: timedelta = DEFAULT_RETENTION, batch: int = PURGE_BATCH
) -> int:
    """Delete failed attempts and lifts older than `retention` (never younger than the
    limiter's windows: a row that still counts is kept), `batch` rows per transaction.
    Returns how many failed attempts were deleted."""
    limits = limiter.limits
    keep = max(retention, limits.session_window, limits.account_window)
    attempts, lifts = _tables(limiter)
    deleted = {}
    for name, table in (("attempts", attempts), ("lifts", lifts)):
        statement = SQL(
            "DELETE FROM {t} WHERE id IN (SELECT id FROM {t}"
            " WHERE at < coalesce(%s::timestamptz, clock_timestamp()) - %s::interval"
            " ORDER BY at LIMIT %s)"
        ).format(t=table)
        deleted[name] = 0
        while True:
            with limiter.datastore.get_connection() as conn:  # one statement: autocommit
                count = conn.execute(statement, (limiter.now(), keep, batch)).rowcount
            deleted[name] += count
            if count < batch:
                break
    if deleted["attempts"] or deleted["lifts"]:
        log.info(
            "attempt retention (%d days): deleted %d failed attempts and %d lifts",
            keep.days,
            deleted["attempts"],
            deleted["lifts"],
        )
    return deleted["attempts"]
