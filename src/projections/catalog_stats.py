"""Key counts and activations per UTC day: two small tables the key catalog keeps beside its keys.

`…_counts` holds one row per (reseller, product, tier, status) with the number of catalog rows
in that status; `…_daily` one row per (UTC day, reseller, product, tier) with the activations of
that day. Both change in the catalog's own transaction (so they stand at the catalog's position
and a rebuild rebuilds them), and both are derived from the catalog's rows, never from the event
store: ops counts read a few hundred rows, not every key.

Counted as the catalog stores it; the read-time rule (an activated key whose period has ended is
expired, before any sweeper records it) is applied when read, from the catalog's `_due` index,
which holds only activated keys ordered by their end.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from license_svc.domain.key import KeyStatus
from license_svc.domain.tiers import Product, Tier

from .base import Batch, View

TABLES = ("counts", "daily")
CountKey = tuple[str, str, str, str]  # reseller_id, product, tier, status
DayKey = tuple[date, str, str, str]  # day, reseller_id, product, tier


@dataclass(frozen=True)
class KeyCount:
    reseller_id: str
    tier: Tier
    status: KeyStatus
    count: int


@dataclass(frozen=True)
class KeyStats:
    counts: tuple[KeyCount, ...]  # non-zero only, by reseller, tier, status
    activations_per_day: tuple[tuple[date, int], ...]  # every day of the range, zeros included
    position: int


def create_statements(view: View) -> list[Composed]:
    """The two tables, and their first fill from the catalog's keys when they are new (a catalog
    made before they existed). The fill adds to rows a running worker may have written meanwhile,
    so either order of the two commits ends with the right totals."""
    counts, daily, keys = view.table("counts"), view.table("daily"), view.table("keys")
    return [
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (reseller_id text NOT NULL, product text NOT NULL,"
            " tier text NOT NULL, status text NOT NULL, n bigint NOT NULL,"
            " PRIMARY KEY (reseller_id, product, tier, status))"
        ).format(counts),
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (day date NOT NULL, reseller_id text NOT NULL,"
            " product text NOT NULL, tier text NOT NULL, n bigint NOT NULL,"
            " PRIMARY KEY (day, reseller_id, product, tier))"
        ).format(daily),
        SQL(
            "INSERT INTO {counts} AS c (reseller_id, product, tier, status, n)"
            " SELECT reseller_id, product, tier, status, count(*) FROM {keys}"
            " WHERE NOT EXISTS (SELECT FROM {counts}) GROUP BY 1, 2, 3, 4"
            " ON CONFLICT (reseller_id, product, tier, status) DO UPDATE SET n = c.n + excluded.n"
        ).format(counts=counts, keys=keys),
        SQL(
            "INSERT INTO {daily} AS d (day, reseller_id, product, tier, n)"
            " SELECT (activated_at AT TIME ZONE 'UTC')::date, reseller_id, product, tier,"
            " count(*) FROM {keys} WHERE activated_at IS NOT NULL"
            " AND NOT EXISTS (SELECT FROM {daily}) GROUP BY 1, 2, 3, 4"
            " ON CONFLICT (day, reseller_id, product, tier) DO UPDATE SET n = d.n + excluded.n"
        ).format(daily=daily, keys=keys),
    ]


def states_before(curs: Cursor[DictRow], view: View, batch: Batch) -> dict[UUID, list[str]]:
    """The stored state of every key the batch changes, read after its issued keys were copied
    and before any change is applied: [reseller_id, product, tier, status] per key id."""
    ids = [e.originator_id for e in [*batch.activated, *batch.revoked, *batch.expired]]
    if not ids:
        return {}
    rows = curs.execute(
        SQL(
            "SELECT key_id, reseller_id, product, tier, status FROM {} WHERE key_id = ANY(%s)"
        ).format(view.table("keys")),
        (ids,),
    ).fetchall()
    return {r["key_id"]: [r["reseller_id"], r["product"], r["tier"], r["status"]] for r in rows}


def record(curs: Cursor[DictRow], view: View, batch: Batch, before: dict[UUID, list[str]]) -> None:
    """Bring the counts and the days up to the batch, the way the catalog applied it: each
    change sets a key's status whatever it was, and only keys the catalog holds change."""
    counts, daily = view.table("counts"), view.table("daily")
    if batch.issued:
        # Counted from the rows just copied (the catalog's values, however it stored them).
        curs.execute(
            SQL(
                "INSERT INTO {counts} AS c (reseller_id, product, tier, status, n)"
                " SELECT reseller_id, product, tier, 'issued', count(*) FROM {keys}"
                " WHERE issued_position BETWEEN %s AND %s GROUP BY 1, 2, 3"
                " ON CONFLICT (reseller_id, product, tier, status)"
                " DO UPDATE SET n = c.n + excluded.n"
            ).format(counts=counts, keys=view.table("keys")),
            (min(p for p, _ in batch.issued), max(p for p, _ in batch.issued)),
        )
    moved: Counter[CountKey] = Counter()
    days: Counter[DayKey] = Counter()

    def move(key_id: UUID, status: KeyStatus) -> list[str] | None:
        state = before.get(key_id)
        if state is not None:
            moved[(state[0], state[1], state[2], state[3])] -= 1
            state[3] = status.value
            moved[(state[0], state[1], state[2], state[3])] += 1
        return state

    for activated in batch.activated:
        if state := move(activated.originator_id, KeyStatus.ACTIVATED):
            day = activated.activated_at.astimezone(UTC).date()
            days[(day, state[0], state[1], state[2])] += 1
    for revoked in batch.revoked:
        move(revoked.originator_id, KeyStatus.REVOKED)
    for expired in batch.expired:
        move(expired.originator_id, KeyStatus.EXPIRED)
    _add(curs, counts, "reseller_id, product, tier, status", "text text text text", moved)
    _add(curs, daily, "day, reseller_id, product, tier", "date text text text", days)


def write_folded(
    curs: Cursor[DictRow], view: View, counts: Counter[CountKey], days: Counter[DayKey]
) -> None:
    """A rebuild's fold: the counts (zeros included: a status some key stood in) and days."""
    _add(curs, view.table("counts"), "reseller_id, product, tier, status", "text text text text",
         counts, zeros=True)  # fmt: skip
    _add(curs, view.table("daily"), "day, reseller_id, product, tier", "date text text text", days)


def _add(
    curs: Cursor[DictRow],
    table: Identifier,
    columns: str,
    types: str,
    deltas: Counter[Any],
    zeros: bool = False,
) -> None:
    changed = [(*key, n) for key, n in deltas.items() if n or zeros]
    if not changed:
        return
    arrays = SQL(", ").join(SQL("%s::{}[]").format(SQL(t)) for t in [*types.split(), "bigint"])
    curs.execute(
        SQL(
            "INSERT INTO {table} AS t ({columns}, n) SELECT * FROM unnest({arrays})"
            " ON CONFLICT ({columns}) DO UPDATE SET n = t.n + excluded.n"
        ).format(table=table, columns=SQL(columns), arrays=arrays),
        [list(column) for column in zip(*changed, strict=True)],
    )


# -- reading -------------------------------------------------------------------------------


def key_stats(
    view: View, reseller_id: str, product: Product | None, now: datetime, days: DayRange
) -> KeyStats:
    """Counts and days in one statement (one snapshot), with the catalog's position."""
    where: list[Composable] = []
    params: dict[str, object] = {"now": now, "first": days.first, "last": days.last}
    if reseller_id:
        where.append(SQL("reseller_id = %(reseller)s"))
        params["reseller"] = reseller_id
    if product is not None:
        where.append(SQL("product = %(product)s"))
        params["product"] = product.value
    extra = SQL("").join(SQL(" AND ") + w for w in where)
    statement = SQL(
        "SELECT p.position, s.* FROM {position} LEFT JOIN LATERAL ("
        " SELECT 'stored' AS kind, reseller_id, tier, status, sum(n)::bigint AS n,"
        "  NULL::date AS day FROM {counts} WHERE true{extra} GROUP BY 2, 3, 4"
        " UNION ALL"
        " SELECT 'ended', reseller_id, tier, 'activated', count(*), NULL FROM {keys}"
        "  WHERE status = 'activated' AND period_ends_at <= %(now)s{extra} GROUP BY 2, 3"
        " UNION ALL"
        " SELECT 'day', '', '', '', sum(n)::bigint, day FROM {daily}"
        "  WHERE day BETWEEN %(first)s AND %(last)s{extra} GROUP BY day"
        ") s ON true"
    ).format(
        position=view.position_subquery(),
        counts=view.table("counts"),
        keys=view.table("keys"),
        daily=view.table("daily"),
        extra=extra,
    )
    with view.datastore.get_connection() as conn:
        rows = conn.execute(statement, params).fetchall()
    totals: Counter[tuple[str, str, str]] = Counter()
    per_day: dict[date, int] = {}
    for row in rows:
        if row["kind"] == "stored":
            totals[(row["reseller_id"], row["tier"], row["status"])] += row["n"]
        elif row["kind"] == "ended":  # activated in the catalog, expired by the read-time rule
            totals[(row["reseller_id"], row["tier"], KeyStatus.ACTIVATED.value)] -= row["n"]
            totals[(row["reseller_id"], row["tier"], KeyStatus.EXPIRED.value)] += row["n"]
        elif row["kind"] == "day":
            per_day[row["day"]] = int(row["n"])
    counts = tuple(
        KeyCount(reseller, Tier(tier), KeyStatus(status), n)
        for (reseller, tier, status), n in sorted(totals.items(), key=_count_order)
        if n
    )
    return KeyStats(
        counts,
        tuple((day, per_day.get(day, 0)) for day in days),
        int(rows[0]["position"]) if rows else 0,
    )


@dataclass(frozen=True)
class DayRange:
    """UTC days, both ends included."""

    first: date
    last: date

    def __iter__(self) -> Any:
        for ordinal in range(self.first.toordinal(), self.last.toordinal() + 1):
            yield date.fromordinal(ordinal)  # never a day past `last`: date.max is a last day

    def __len__(self) -> int:
        return self.last.toordinal() - self.first.toordinal() + 1


_TIER_ORDER = {tier.value: i for i, tier in enumerate(Tier)}
_STATUS_ORDER = {status.value: i for i, status in enumerate(KeyStatus)}


def _count_order(item: tuple[tuple[str, str, str], int]) -> tuple[str, int, int]:
    (reseller, tier, status), _ = item
    return reseller, _TIER_ORDER.get(tier, 99), _STATUS_ORDER.get(status, 99)
