"""Subscription periods (rules §3): calendar months in UTC, clamped to the end of shorter months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from license_svc.domain.periods import period_end


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("starts", "months", "ends"),
    [
        (utc(2026, 1, 31, 9, 30), 1, utc(2026, 2, 28, 9, 30)),
        (utc(2028, 1, 31, 23, 59, 59), 1, utc(2028, 2, 29, 23, 59, 59)),
        (utc(2025, 12, 31, 12, 0), 2, utc(2026, 2, 28, 12, 0)),
        (utc(2027, 12, 31, 12, 0), 2, utc(2028, 2, 29, 12, 0)),
        (utc(2028, 2, 29, 8, 15), 12, utc(2029, 2, 28, 8, 15)),
        (utc(2028, 2, 29, 8, 15), 48, utc(2032, 2, 29, 8, 15)),
        (utc(2026, 3, 31, 0, 0), 1, utc(2026, 4, 30, 0, 0)),
        (utc(2026, 8, 31, 6, 0), 1, utc(2026, 9, 30, 6, 0)),
        (utc(2026, 1, 15, 10, 0), 1, utc(2026, 2, 15, 10, 0)),
        (utc(2026, 1, 31, 9, 30), 60, utc(2031, 1, 31, 9, 30)),
    ],
    ids=[
        "jan31+1-feb28",
        "jan31+1-leap-feb29",
        "dec31+2-feb28",
        "dec31+2-leap-feb29",
        "feb29+12-feb28",
        "feb29+48-feb29",
        "mar31+1-apr30",
        "aug31+1-sep30",
        "mid-month",
        "sixty-months",
    ],
)
def test_a_period_runs_whole_calendar_months_clamped_to_the_last_day_of_a_shorter_month(
    starts: datetime, months: int, ends: datetime
) -> None:
    assert period_end(starts, months) == ends


def test_a_period_keeps_the_time_of_day_to_the_microsecond() -> None:
    starts = utc(2026, 1, 31, 17, 45, 12, 345678)
    assert period_end(starts, 1) == utc(2026, 2, 28, 17, 45, 12, 345678)


def test_a_period_is_computed_in_utc_whatever_the_offset_of_its_start() -> None:
    # 2026-01-31 20:00 at UTC-5 is 2026-02-01 01:00 UTC: the period ends on March 1st, not Feb 28.
    starts = datetime(2026, 1, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    ends = period_end(starts, 1)
    assert ends == utc(2026, 3, 1, 1, 0)
    assert ends.utcoffset() == timedelta(0)


def test_a_period_refuses_a_start_without_a_timezone() -> None:
    with pytest.raises(ValueError):
        period_end(datetime(2026, 1, 31, 9, 30), 1)
