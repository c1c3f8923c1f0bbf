"""Seats sold against seats used, per account and UTC day (OpsService.GetSeatUsage, the page).

- Seats sold: the seats of the account's keys (of one reseller, or all) whose period ran during
  the day and that were not revoked before it began — from the key catalog. Plans bought online
  are nobody's sale and are not in it.
- Peak seats leased: the most Integrations seat leases live at one instant of the day, from
  the leases' events as the allowance view keeps them (granted, ended; a lease not yet ended
  counts as live until it is). The level only rises at a grant, so the peak is the largest count
  at the day's start or at one of its grants.

One statement over the two views' live generations; rows for days on which the account had
seats sold, at most `limit` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from psycopg.sql import SQL

from license_svc.domain.tiers import Product
from projections.catalog_stats import DayRange

from .live import LiveViews

USAGE_DAYS = 30  # the default range: the last 30 days up to today
MAX_USAGE_DAYS = 92
MAX_ROWS = 5_000


@dataclass(frozen=True)
class UsageDay:
    day: date
    account_id: str
    seats_sold: int
    peak_seats_leased: int


@dataclass(frozen=True)
class Usage:
    days: list[UsageDay]
    truncated: bool
    position: int


def seat_usage(
    views: LiveViews, *, reseller_id: str, account_id: str, days: DayRange, limit: int = MAX_ROWS
) -> Usage:
    catalog, allowance = views.catalog, views.allowance
    statement = SQL(
        "WITH days AS (SELECT d::date AS day, d AS start, d + interval '1 day' AS stop"
        "  FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz,"
        "  interval '1 day') d),"
        " sold AS (SELECT k.account_id, d.day, sum(k.seats) AS seats FROM {keys} k"
        "  JOIN days d ON k.period_starts_at < d.stop AND k.period_ends_at > d.start"
        "  AND (k.revoked_at IS NULL OR k.revoked_at > d.start)"
        "  WHERE k.account_id IS NOT NULL AND k.product = %(product)s"
        "  AND (%(reseller)s = '' OR k.reseller_id = %(reseller)s)"
        "  AND (%(account)s = '' OR k.account_id = %(account)s)"
        "  GROUP BY k.account_id, d.day),"
        " spans AS (SELECT l.account_id, l.granted_at,"
        "  coalesce(l.ended_at, 'infinity') AS ended_at FROM {leases} l"
        "  WHERE l.product = %(product)s"
        "  AND l.account_id IN (SELECT DISTINCT account_id FROM sold)),"
        " points AS (SELECT s.account_id, d.day, greatest(s.granted_at, d.start) AS at"
        "  FROM spans s JOIN days d ON s.granted_at < d.stop AND s.ended_at > d.start),"
        " peaks AS (SELECT p.account_id, p.day, max((SELECT count(*) FROM spans x"
        "  WHERE x.account_id = p.account_id AND x.granted_at <= p.at AND x.ended_at > p.at))"
        "  AS peak FROM points p GROUP BY p.account_id, p.day)"
        " SELECT p.position, s.account_id, s.day, s.seats, coalesce(pk.peak, 0) AS peak"
        " FROM {position} LEFT JOIN sold s ON true"
        " LEFT JOIN peaks pk ON pk.account_id = s.account_id AND pk.day = s.day"
        " ORDER BY s.day, s.account_id LIMIT %(limit)s"
    ).format(
        keys=catalog.table("keys"),
        leases=allowance.table("leases"),
        position=catalog.position_subquery(),
    )
    params = {
        "first": datetime.combine(days.first, time(), UTC),
        "last": datetime.combine(days.last, time(), UTC),
        "product": Product.INTEGRATIONS.value,
        "reseller": reseller_id,
        "account": account_id,
        "limit": limit + 1,
    }
    with views.datastore.get_connection() as conn:
        rows = conn.execute(statement, params).fetchall()
    found = [
        UsageDay(row["day"], row["account_id"], int(row["seats"]), int(row["peak"]))
        for row in rows
        if row["account_id"] is not None
    ]
    position = int(rows[0]["position"]) if rows else 0
    return Usage(found[:limit], len(found) > limit, position)


def default_usage_days(today: date, first: date | None, last: date | None) -> DayRange:
    """The range asked for, a missing end filled in: USAGE_DAYS days ending today (or starting
    at `first`), stopped at the calendar's ends."""
    span = timedelta(days=USAGE_DAYS - 1)
    if last is None:
        last = _shifted(first, span) if first else today
    return DayRange(first or _shifted(last, -span), last)


def _shifted(day: date, by: timedelta) -> date:
    try:
        return day + by
    except OverflowError:
        return date.max if by > timedelta(0) else date.min
