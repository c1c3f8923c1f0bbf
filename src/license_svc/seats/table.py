"""The lease table: every lease ever granted, one row each, its current `expires_at` included.

A row is *open* while `ended` is NULL and *live* while open and `expires_at` is after now. It ends
once: 'released' by its holder, or 'expired' — taken back by an acquire that needed its seat, or by
the sweeper. `recorded` says its ending's event is in the store (a release records it in its own
transaction; an expiry is recorded by the sweeper).

A renewal rewrites `expires_at` only. No index names `expires_at` (nor a column a renewal
changes), so with the table's spare room per page (fillfactor) a renewal is a HOT update: one
heap tuple and its WAL record, no index entry. The sweeper finds its work through the small
index of unrecorded leases instead of an index on `expires_at`.
"""

from __future__ import annotations

from psycopg.sql import SQL, Composed, Identifier, Literal

LOCK_NAMESPACE = 0x5345  # pg_advisory_xact_lock(namespace, hashtext(account || product))


class LeaseTable:
    def __init__(self, schema: str) -> None:
        t = SQL("{}.seat_leases").format(Identifier(schema))
        self.create: list[Composed] = [
            SQL(statement).format(t=t)
            for statement in (
                "CREATE TABLE IF NOT EXISTS {t} ("
                " lease_id uuid PRIMARY KEY,"
                " account_id text NOT NULL,"
                " product text NOT NULL,"
                " connection_id text NOT NULL,"
                " holder text NOT NULL,"
                " ttl_seconds integer NOT NULL,"
                " granted_at timestamptz NOT NULL,"
                " expires_at timestamptz NOT NULL,"
                " ended text,"
                " ended_at timestamptz,"
                " recorded boolean NOT NULL DEFAULT false)"
                " WITH (fillfactor = 70)",
                # One open lease per connection: a retried acquire finds it, never a second seat.
                "CREATE UNIQUE INDEX IF NOT EXISTS seat_leases_connection_idx"
                " ON {t} (account_id, product, connection_id) WHERE ended IS NULL",
                "CREATE INDEX IF NOT EXISTS seat_leases_account_idx"
                " ON {t} (account_id, product, granted_at)",
                "CREATE INDEX IF NOT EXISTS seat_leases_unrecorded_idx"
                " ON {t} (granted_at) WHERE NOT recorded",
            )
        ]
        group = Identifier(schema, "license_svc_seat_group")
        # The first half of a group of acquires and releases, in one round trip. The advisory
        # locks of every account the group touches (an acquire's, a released lease's) are taken
        # first and in one order, that of the lock numbers, on every replica: two groups never
        # wait for each other in a circle. In a VOLATILE function each statement takes a fresh
        # snapshot: what follows the locks sees every lease committed by those who held them
        # before, and every renewal that won a row.
        self.create.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {group}(p_now timestamptz, p_accounts text[],"
                " p_products text[], p_releases uuid[])"
                " RETURNS TABLE (kind text, at_now timestamptz, lease_id uuid, account_id text,"
                " product text, connection_id text, holder text, ttl_seconds integer,"
                " granted_at timestamptz, expires_at timestamptz)"
                " LANGUAGE plpgsql VOLATILE AS $$"
                " #variable_conflict use_column\n"
                " DECLARE v_now timestamptz; v_lock integer; i integer;"
                " BEGIN"
                "  FOR v_lock IN SELECT DISTINCT hashtext(x.account_id || '/' || x.product)"
                "   FROM (SELECT a.account_id, a.product"
                "    FROM unnest(p_accounts, p_products) AS a(account_id, product)"
                "    UNION ALL SELECT l.account_id, l.product FROM {t} l"
                "    WHERE l.lease_id = ANY(p_releases)) x ORDER BY 1"
                "  LOOP"
                "   PERFORM pg_advisory_xact_lock({ns}, v_lock);"
                "  END LOOP;"
                "  v_now := coalesce(p_now, clock_timestamp());"
                # Releases first: the group's acquires count the seats they free. ("Open" is
                # written so that it does not match the partial index of open leases: each
                # released lease is one primary-key look-up, as in the heartbeat.)
                "  RETURN QUERY UPDATE {t} l SET ended = 'released', ended_at = v_now,"
                "   recorded = true WHERE l.lease_id = ANY(p_releases)"
                "   AND coalesce(l.ended, '') = ''"
                "   AND l.expires_at > v_now RETURNING 'released'::text, v_now, l.lease_id,"
                "   l.account_id, l.product, NULL::text, NULL::text, NULL::integer,"
                "   NULL::timestamptz, NULL::timestamptz;"
                # Lapsed leases end here, under the lock, before counting: no renewal can bring
                # one back after it was not counted (a renewal racing this waits for the row
                # and then finds it ended, or got the row first and is seen by the count).
                # One account at a time: each statement finds its open leases through the
                # partial index of open leases, however many ended ones the account has.
                "  FOR i IN 1 .. coalesce(array_length(p_accounts, 1), 0) LOOP"
                "   UPDATE {t} l SET ended = 'expired', ended_at = l.expires_at"
                "    WHERE l.account_id = p_accounts[i] AND l.product = p_products[i]"
                "    AND l.ended IS NULL AND l.expires_at <= v_now;"
                "   RETURN QUERY SELECT 'open'::text, v_now, l.lease_id, l.account_id,"
                "    l.product, l.connection_id, l.holder, l.ttl_seconds, l.granted_at,"
                "    l.expires_at FROM {t} l"
                "    WHERE l.account_id = p_accounts[i] AND l.product = p_products[i]"
                "    AND l.ended IS NULL ORDER BY l.granted_at, l.lease_id;"
                "  END LOOP;"
                "  RETURN QUERY SELECT 'now'::text, v_now, NULL::uuid, NULL::text, NULL::text,"
                "   NULL::text, NULL::text, NULL::integer, NULL::timestamptz, NULL::timestamptz;"
                " END $$"
            ).format(group=group, t=t, ns=Literal(LOCK_NAMESPACE))
        )
        self.group = SQL("SELECT * FROM {}(%s, %s, %s, %s)").format(group).as_bytes(None)
        # (`license_svc_seat_state`, the one-acquire function of earlier servers, is left in
        # place: replicas of the previous version call it until a rolling update replaces them.)
        columns = (
            "lease_id, account_id, product, connection_id, holder, ttl_seconds,"
            " granted_at, expires_at"
        )
        # A group's new leases in one statement, and its retried acquires' renewals in another.
        self.insert = (
            SQL(
                "INSERT INTO {t} (" + columns + ") SELECT * FROM unnest(%s::uuid[], %s::text[],"
                " %s::text[], %s::text[], %s::text[], %s::integer[], %s::timestamptz[],"
                " %s::timestamptz[])"
            )
            .format(t=t)
            .as_bytes(None)
        )
        self.extend = (
            SQL(
                "UPDATE {t} l SET expires_at = x.expires_at, holder = x.holder,"
                " ttl_seconds = x.ttl_seconds FROM unnest(%s::uuid[], %s::timestamptz[],"
                " %s::text[], %s::integer[]) AS x(lease_id, expires_at, holder, ttl_seconds)"
                " WHERE l.lease_id = x.lease_id"
            )
            .format(t=t)
            .as_bytes(None)
        )
        self._t = t
        self._renew: dict[str, bytes] = {}
        self.live_of = SQL(
            "SELECT l.account_id, l.product, l.lease_id, l.granted_at FROM {t} l"
            " JOIN unnest(%s::text[], %s::text[]) AS a(account_id, product)"
            " ON l.account_id = a.account_id AND l.product = a.product"
            " WHERE l.ended IS NULL AND l.expires_at > %s"
        ).format(t=t)
        self.live = SQL(
            "SELECT " + columns + " FROM {t}"
            " WHERE account_id = %s AND product = %s AND ended IS NULL"
            " AND expires_at > coalesce(%s::timestamptz, now())"
            " ORDER BY granted_at, lease_id"
        ).format(t=t)
        self.counts = SQL(
            "SELECT a.account_id, a.product, count(l.lease_id) AS leased,"
            " min(l.expires_at) AS next_expiry"
            " FROM unnest(%s::text[], %s::text[]) AS a(account_id, product)"
            " LEFT JOIN {t} l ON l.account_id = a.account_id AND l.product = a.product"
            " AND l.ended IS NULL AND l.expires_at > %s"
            " GROUP BY a.account_id, a.product"
        ).format(t=t)
        # The sweeper: leases past their expires_at (or taken back) whose ending is not yet an
        # event. Rows another sweeper holds are skipped, and a row it recorded meanwhile is
        # re-checked under its lock and left out: of two sweepers exactly one records a lease.
        self.expire = SQL(
            "WITH c AS (SELECT coalesce(%s::timestamptz, clock_timestamp()) AS now),"
            " picked AS (SELECT l.lease_id FROM {t} l, c WHERE NOT l.recorded"
            " AND (l.ended IS NOT NULL OR l.expires_at <= c.now)"
            " ORDER BY l.granted_at LIMIT %s FOR UPDATE OF l SKIP LOCKED)"
            " UPDATE {t} l SET ended = coalesce(l.ended, 'expired'),"
            " ended_at = coalesce(l.ended_at, l.expires_at), recorded = true"
            " FROM picked WHERE l.lease_id = picked.lease_id"
            " RETURNING l.lease_id, l.account_id, l.product, l.ended_at"
        ).format(t=t)

    def renew(self, entitlements: Identifier) -> bytes:
        """The heartbeat: one statement for the whole batch, one HOT update per lease. Each
        row is (new expires_at, account, product, time, the renewed ids joined by commas), one
        per expires_at; account, product and time are set only where the account's live leases
        outnumber the seats its counted entitlements add up to (in the allowance view's table
        `entitlements`): the caller ranks those leases for `over_allowance`, and only those."""
        key = entitlements.as_string(None)
        found = self._renew.get(key)
        if found is None:
            found = self._renew[key] = (
                SQL(
                    # One statement, its own transaction (autocommit), whose commit does not
                    # wait for the WAL flush: set_config(…, true) lasts to that commit.
                    "WITH c AS (SELECT coalesce(%s::timestamptz, clock_timestamp()) AS now,"
                    " set_config('synchronous_commit', 'off', true) AS flush),"
                    # Each id one primary-key look-up, whatever the cached generic plan: the
                    # ids are split once (a sub-select), and "open" is written so that it does
                    # not match the partial index of open leases — else the plan may scan every
                    # open lease of every account and test each against the batch (seen: 160 ms
                    # a call with 4,000 open leases).
                    " renewed AS (UPDATE {t} l SET expires_at = c.now"
                    " + make_interval(secs => l.ttl_seconds) FROM c"
                    " WHERE l.lease_id = ANY((SELECT string_to_array(%s, ',')::uuid[])::uuid[])"
                    " AND l.holder = %s AND coalesce(l.ended, '') = ''"
                    " AND l.expires_at > c.now"
                    " RETURNING l.lease_id, l.account_id, l.product, l.expires_at, c.now),"
                    # Counted once per account, not per lease: a batch of 100 leases of one
                    # account costs one count, not a hundred. MATERIALIZED: the planner would
                    # otherwise inline the counts into the join and run them once per row.
                    " accounts AS MATERIALIZED"
                    " (SELECT DISTINCT account_id, product, now FROM renewed),"
                    " tallies AS MATERIALIZED (SELECT a.account_id, a.product,"
                    " (SELECT count(*) FROM {t} x WHERE x.account_id = a.account_id"
                    "  AND x.product = a.product AND x.ended IS NULL AND x.expires_at > a.now)"
                    "  AS live,"
                    " (SELECT coalesce(sum(e.seats), 0) FROM {e} e"
                    "  WHERE e.account_id = a.account_id AND e.product = a.product"
                    "  AND e.starts_at <= a.now AND e.ends_at > a.now)"
                    "  AS seats"
                    " FROM accounts a)"
                    # One row per new expires_at (most often one for the whole batch), its
                    # leases' ids as one text; the account, product and time only where the
                    # account is crowded (more live leases than seats), else NULLs.
                    " SELECT r.expires_at,"
                    " CASE WHEN t.live > t.seats THEN r.account_id END,"
                    " CASE WHEN t.live > t.seats THEN r.product END,"
                    " CASE WHEN t.live > t.seats THEN r.now END,"
                    " string_agg(r.lease_id::text, ',') FROM renewed r"
                    " JOIN tallies t ON t.account_id = r.account_id AND t.product = r.product"
                    " GROUP BY 1, 2, 3, 4"
                )
                .format(t=self._t, e=entitlements)
                .as_bytes(None)
            )
        return found
