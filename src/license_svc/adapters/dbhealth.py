"""Is the database reachable? Checked in the background, never from inside a request.

`DatabaseMonitor` runs `SELECT 1` every `health_interval_seconds` on a connection of its own
(not the pool's: a busy pool is not an outage). Each check is bounded: it runs on a helper
thread that the monitor waits for at most `CHECK_SECONDS`, so a check stuck on a silent network
counts as a failure instead of freezing health. On every change it calls its listeners with
`up` (health statuses, the pools); when the database comes back it first checks the idle
pooled connections, so the ones a restart broke are replaced before calls take them.

One slow `SELECT 1` does not make a replica unready (every replica's check would see the same
slow moment, and all would leave the load balancer at once): it takes `failures` failed checks
in a row to go down, and one good check to come back. The very first check decides at once.

One clock: with a `clock` (the process's real one, not a test's), each check also reads the
database's `clock_timestamp()` and measures this process's offset from it (against the middle of
the round trip). Further off than `max_offset` the replica is down too — NOT_SERVING, its calls
answered UNAVAILABLE — and says so in one log line; `offset` is exported as a metric.

Whoever serves reads `monitor.up` (a flag) to answer UNAVAILABLE at once while it is down.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import psycopg

log = logging.getLogger("license_svc.adapters.dbhealth")

CHECK_SECONDS = 2.0

Listener = Callable[[bool], None]


class DatabaseMonitor:
    def __init__(
        self,
        conninfo: str,
        label: str,
        interval: float,
        pools: Iterable[Any] = (),
        failures: int = 1,
        clock: Callable[[], datetime] | None = None,
        max_offset: float = 0.5,
    ) -> None:
        self._conninfo = conninfo
        self._failures = max(1, failures)  # failed checks in a row before it is down
        self._failed = 0
        self._clock = clock  # None: not measured (a test's injected clock)
        self._max_offset = max_offset
        self.offset = 0.0  # seconds this process's clock is ahead of the database's
        self._clock_off = False
        self._label = label
        self._interval = interval
        self._pools = list(pools)
        self._listeners: list[Listener] = []
        self._up = threading.Event()
        self._checked = threading.Event()
        self._stopping = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._probe: threading.Thread | None = None
        self._thread = threading.Thread(target=self._run, name="db-health", daemon=True)
        self._start_lock = threading.Lock()
        self._started = False
        self.changed_at = time.monotonic()

    @property
    def up(self) -> bool:
        return self._up.is_set()

    def listen(self, listener: Listener) -> None:
        """Call `listener(up)` now and on every change."""
        self._listeners.append(listener)
        listener(self.up)

    def start(self, timeout: float = CHECK_SECONDS + 1) -> None:
        """Start checking (once; later calls return at once); returns after the first check
        (or `timeout`)."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
            self._thread.start()
        self._checked.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            self._observe(self._check())
            self._stopping.wait(max(0.0, self._interval - (time.monotonic() - started)))

    def _observe(self, up: bool) -> None:
        """One check's result: down after `failures` failures in a row, up after one success."""
        blip = up and self.up and self._failed > 0  # failed, but fewer times than `failures`
        self._failed = 0 if up else self._failed + 1
        first = not self._checked.is_set()
        if first or (up != self.up and (up or self._failed >= self._failures)):
            self._change(up)
        elif blip:
            # A failover quicker than the hysteresis (a standby promoted within a second)
            # leaves health up, and every idle pooled connection dead: drop them all now, or
            # each would cost a caller a failed call (a worker a failed batch) in turn.
            self._check_pools()
        self._checked.set()

    def _check_pools(self) -> None:
        for pool in self._pools:  # drop the connections an outage broke, before calls do
            with contextlib.suppress(Exception):
                pool.check()

    def _change(self, up: bool) -> None:
        was = "up" if self.up else "down"
        if up:
            self._check_pools()
            self._up.set()
        else:
            self._up.clear()
        self.changed_at = time.monotonic()
        if self._checked.is_set() or not up:
            log.warning("database %s is %s (was %s)", self._label, "up" if up else "DOWN", was)
        for listener in self._listeners:
            try:
                listener(up)
            except Exception:
                log.exception("database health listener failed")

    def _check(self) -> bool:
        if self._probe is not None and self._probe.is_alive():
            return False  # the previous check is still stuck: the database is not answering
        result: list[bool] = []
        self._probe = threading.Thread(target=self._query, args=(result,), daemon=True)
        self._probe.start()
        self._probe.join(CHECK_SECONDS)
        if not result:
            self._conn = None  # abandoned to the stuck probe, which closes it when it ends
            return False
        return result[0]

    def _query(self, result: list[bool]) -> None:
        conn = self._conn
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(self._conninfo, autocommit=True)
            if self._clock is None:
                conn.execute("SELECT 1")
            else:
                sent = self._clock()
                row = conn.execute("SELECT clock_timestamp()").fetchone()
                back = self._clock()
                if row is not None:
                    half = (back - sent) / 2  # the database read its clock within ± this
                    self._measured((sent + half - row[0]).total_seconds(), half.total_seconds())
            self._conn = conn
            result.append(not self._clock_off)
        except Exception as error:
            if self.up:
                log.info("database check failed: %s", " ".join(str(error).split()))
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            result.append(False)

    def _measured(self, offset: float, uncertainty: float = 0.0) -> None:
        """Judge the offset only by what the round trip proves: a slow round trip (a loaded
        machine) widens the uncertainty, and a clock is off only when even its nearest
        possible reading is past the bound; a round trip too slow to tell keeps the verdict."""
        self.offset = offset
        if uncertainty > self._max_offset:
            return
        off = abs(offset) - uncertainty > self._max_offset
        if off != self._clock_off:
            self._clock_off = off
            if off:
                log.error(
                    "this process's clock is %+.3fs off the database's (more than %.3fs):"
                    " NOT_SERVING until it is back within the bound",
                    offset,
                    self._max_offset,
                )
            else:
                log.warning("this process's clock is back within %.3fs of the database's", offset)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
