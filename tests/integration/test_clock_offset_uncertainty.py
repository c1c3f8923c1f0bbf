"""The clock check judges only what a round trip proves: a replica whose clock is seconds off
the database's is down, but one whose round trip was merely slow (a loaded machine) is not —
the midpoint of a slow round trip is uncertain by half of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from psycopg.conninfo import make_conninfo

from license_svc.adapters.dbhealth import DatabaseMonitor


def readings(ahead: timedelta, round_trip: timedelta) -> Iterator[datetime]:
    """A process clock `ahead` of real time whose reads straddle a round trip that seems to
    take `round_trip` (the second read of each pair is that much later)."""
    while True:
        now = datetime.now(UTC) + ahead
        yield now
        yield now + round_trip


def check_with(database_url: str, ahead: timedelta, round_trip: timedelta) -> bool:
    clock = readings(ahead, round_trip)
    monitor = DatabaseMonitor(
        make_conninfo(database_url, connect_timeout=2),
        "test",
        interval=0.5,
        clock=lambda: next(clock),
        max_offset=0.5,
    )
    try:
        monitor._observe(monitor._check())
        return monitor.up
    finally:
        monitor.stop()


def test_a_clock_two_seconds_ahead_is_down(database_url: str) -> None:
    assert check_with(database_url, timedelta(seconds=2), timedelta(0)) is False


def test_a_slow_round_trip_alone_never_marks_the_clock_off(database_url: str) -> None:
    assert check_with(database_url, timedelta(0), timedelta(seconds=3)) is True


def test_a_clock_in_step_with_a_quick_round_trip_is_up(database_url: str) -> None:
    assert check_with(database_url, timedelta(0), timedelta(milliseconds=20)) is True
