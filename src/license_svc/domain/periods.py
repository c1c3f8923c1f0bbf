"""Subscription periods: whole calendar months in UTC, clamped to the end of shorter months."""

from __future__ import annotations

from datetime import UTC, datetime

from dateutil.relativedelta import relativedelta


def period_end(starts_at: datetime, months: int) -> datetime:
    """Jan 31 + 1 month = Feb 28 (or 29), same time of day; relativedelta does the clamping."""
    if starts_at.tzinfo is None:
        raise ValueError("period start must be timezone-aware")
    return starts_at.astimezone(UTC) + relativedelta(months=months)
