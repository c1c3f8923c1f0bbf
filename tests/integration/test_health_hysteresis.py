"""The background database check against a real Postgres and a port where nothing listens: one
failed `SELECT 1` leaves the replica serving; `failures` in a row make it NOT_SERVING; one good
check brings it back."""

from __future__ import annotations

from collections.abc import Callable

from psycopg.conninfo import make_conninfo

from license_svc.adapters.dbhealth import DatabaseMonitor
from tests.support import free_port


def checker(monitor: DatabaseMonitor) -> Callable[[str], bool]:
    """One check of `monitor` against the database at `conninfo`: is it up afterwards?"""

    def check(conninfo: str) -> bool:
        monitor._close()
        monitor._conninfo = conninfo
        monitor._observe(monitor._check())
        return monitor.up

    return check


def test_health_goes_down_only_after_n_failed_checks_in_a_row_and_back_after_one_good(
    database_url: str,
) -> None:
    good = make_conninfo(database_url, connect_timeout=2)
    nowhere = make_conninfo(database_url, host="127.0.0.1", port=free_port(), connect_timeout=2)
    monitor = DatabaseMonitor(good, "test", interval=0.5, failures=3)
    seen: list[bool] = []
    monitor.listen(seen.append)

    check = checker(monitor)

    try:
        assert check(good) is True
        assert [check(nowhere), check(nowhere)] == [True, True]  # a slow moment is no outage
        assert check(good) is True
        assert [check(nowhere) for _ in range(3)] == [True, True, False]
        assert check(good) is True
    finally:
        monitor.stop()
    assert seen == [False, True, False, True]


class CountingPool:
    def __init__(self) -> None:
        self.checks = 0

    def check(self) -> None:
        self.checks += 1


def test_a_failed_check_too_short_to_turn_health_down_still_clears_the_pools_dead_connections(
    database_url: str,
) -> None:
    # A standby promoted within the hysteresis: health stays up, but every idle pooled
    # connection went with the old primary.
    good = make_conninfo(database_url, connect_timeout=2)
    nowhere = make_conninfo(database_url, host="127.0.0.1", port=free_port(), connect_timeout=2)
    pool = CountingPool()
    monitor = DatabaseMonitor(good, "test", interval=0.5, pools=[pool], failures=3)

    check = checker(monitor)

    try:
        assert check(good) is True
        checked_at_start = pool.checks
        assert check(nowhere) is True
        assert pool.checks == checked_at_start  # not while it fails
        assert check(good) is True
        assert pool.checks == checked_at_start + 1  # once it answers again
        assert check(good) is True
        assert pool.checks == checked_at_start + 1  # and only then
    finally:
        monitor.stop()
