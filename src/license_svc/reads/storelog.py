"""The store's notification log as a server's streams read it: one follower per process.

- `LogReader` reads the log (and the first events of given keys) on a small connection pool of
  its own, so streams never take a connection the unary calls' pool needs.
- `LogFollower` is one thread per server process: it LISTENs on the store's channel (every
  append NOTIFYs it at commit), reads what was appended once per wake-up, keeps the newest
  `window` events in memory and tells its subscribers the new head. Any number of live
  streams are served from that one read; a stream that fell behind the window reads the store
  itself. Without a LISTEN it re-reads after `recheck_seconds` (the safety net for a lost
  connection, never the way live events arrive). While no stream is subscribed it only keeps
  the head, not the events.

A silent partition pins no thread: every round trip of the reader and the follower runs under
a `Watchdog` (the statement timeout and a grace), the LISTEN session pings the server every
`PING_SECONDS`, and the follower says how long it has heard nothing (`silent_for`) so the
live streams it serves can end with UNAVAILABLE instead of waiting in silence.

Positions are the store's notification ids. Writers assign them under the events table's
lock and commit before releasing it, so once id N is visible every smaller id is committed or
gone for good: reading `> head` never skips an event that commits later.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import psycopg
from eventsourcing.persistence import Notification
from psycopg.rows import TupleRow
from psycopg.sql import SQL, Identifier
from psycopg_pool import ConnectionPool

from license_svc.adapters.supervise import supervise
from license_svc.adapters.watchdog import Watchdog

log = logging.getLogger("license_svc.readpath")

Wake = Callable[[int], None]  # called with the new head, on the follower's thread
PING_SECONDS = 5.0  # the LISTEN session's round trip: a silent one is found and replaced


class LogSilent(psycopg.OperationalError):
    """The follower has heard nothing from the database for too long (a fault: a client of a
    live stream resumes from its last position, here or on another replica)."""


@dataclass(frozen=True)
class StoreNames:
    conninfo: str
    schema: str
    events_table: str
    channel: str


class LogReader:
    """Reads of the notification log on a pool of `connections` connections."""

    def __init__(
        self,
        names: StoreNames,
        connections: int = 2,
        timeout: float = 5.0,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.names = names
        # No bound given: none but the server's and TCP's (tests that build a reader alone).
        self.watchdog = watchdog or Watchdog(float("inf"), "stream-reads-watchdog")
        table = Identifier(names.schema, names.events_table)
        self._after = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM {} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(table)
        self._first_events = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM {} WHERE originator_id = ANY(%s) AND originator_version <= 2"
        ).format(table)
        self._head = SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(table)
        self._pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
            names.conninfo,
            min_size=1,
            max_size=max(1, connections),
            kwargs={"autocommit": True, "connect_timeout": int(max(1, timeout))},
            timeout=timeout,
            open=False,
            name="stream-reads",
        )
        self._opened = False
        self._open_lock = threading.Lock()

    def _conn(self) -> ConnectionPool[psycopg.Connection[TupleRow]]:
        with self._open_lock:
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True
        return self._pool

    def after(self, position: int, limit: int) -> list[Notification]:
        with self._conn().connection() as conn, self.watchdog.watch(conn):
            rows = conn.execute(self._after, (position, limit), prepare=True).fetchall()
        return [_notification(row) for row in rows]

    def first_events(self, key_ids: Sequence[UUID]) -> list[Notification]:
        """Versions 1 and 2 of each key (KeyIssued; KeyActivated or KeyRevoked)."""
        with self._conn().connection() as conn, self.watchdog.watch(conn):
            rows = conn.execute(self._first_events, (list(key_ids),), prepare=True).fetchall()
        return [_notification(row) for row in rows]

    def head(self) -> int:
        with self._conn().connection() as conn, self.watchdog.watch(conn):
            row = conn.execute(self._head, prepare=True).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._open_lock:
            if self._opened:
                self._pool.close()
                self._opened = False


def _notification(row: TupleRow) -> Notification:
    return Notification(
        id=row[0], originator_id=row[1], originator_version=row[2], topic=row[3], state=row[4]
    )


class LogFollower:
    """The process's one follower of the log. `read(after, limit)` serves live readers from
    memory; `subscribe(wake)` is told each new head."""

    def __init__(
        self,
        reader: LogReader,
        window: int = 10_000,
        batch: int = 1_000,
        recheck_seconds: float = 1.0,
    ) -> None:
        self._reader = reader
        self._window = max(1, window)
        self._batch = max(1, batch)
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._positions: list[int] = []  # ascending ids of `_events`
        self._events: list[Notification] = []
        self._base = 0  # `_events` holds every event in (_base, _head]
        self._head = 0
        self._heard_at = time.monotonic()  # the last round trip of the follower that answered
        self._subscribers: dict[int, Wake] = {}
        self._next_id = 0
        self._woken = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def head(self) -> int:
        with self._lock:
            return self._head

    def read(self, after: int, limit: int) -> list[Notification] | None:
        """Events in (after, head], at most `limit`; None when the window no longer holds
        them all (the caller reads the store)."""
        with self._lock:
            if after < self._base:
                return None
            start = bisect.bisect_right(self._positions, after)
            return self._events[start : start + limit]

    def silent_for(self) -> float:
        """Seconds since the follower last heard the database answer (it asks every
        `recheck_seconds`); 0 while it is not running (nothing to hear)."""
        with self._lock:
            return 0.0 if self._thread is None else time.monotonic() - self._heard_at

    def subscribe(self, wake: Wake) -> Callable[[], None]:
        """Register `wake(head)`; returns the function that unsubscribes it."""
        with self._lock:
            self._next_id += 1
            token = self._next_id
            self._subscribers[token] = wake

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(token, None)

        return unsubscribe

    def start(self) -> None:
        if self._thread is None:
            self._head = self._base = self._reader.head()
            self._heard_at = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    # -- the follower's thread ---------------------------------------------------------------

    def _run(self) -> None:
        listener = threading.Thread(target=self._listen, name="log-listen", daemon=True)
        listener.start()
        while not self._stopping.is_set():
            self._woken.wait(self._recheck)
            self._woken.clear()
            if self._stopping.is_set():
                break
            try:
                self._catch_up()
                with self._lock:
                    self._heard_at = time.monotonic()
            except Exception as error:  # the database is away: the next wake-up retries
                log.warning("log follower: %s", error)
                self._stopping.wait(0.5)

    def _catch_up(self) -> None:
        while True:
            with self._lock:
                head, reading = self._head, bool(self._subscribers)
            if not reading:
                new_head = self._reader.head()
                if new_head <= head:
                    return
                with self._lock:
                    self._head = self._base = new_head
                    self._positions.clear()
                    self._events.clear()
                self._tell(new_head)
                return
            found = self._reader.after(head, self._batch)
            if not found:
                return
            self._keep(found)
            self._tell(found[-1].id)
            if len(found) < self._batch:
                return

    def _keep(self, found: list[Notification]) -> None:
        with self._lock:
            self._events.extend(found)
            self._positions.extend(n.id for n in found)
            self._head = found[-1].id
            excess = len(self._events) - self._window
            if excess > self._window // 4:  # trim in chunks, not on every batch
                self._base = self._positions[excess - 1]
                del self._events[:excess]
                del self._positions[:excess]

    def _tell(self, head: int) -> None:
        with self._lock:
            subscribers = list(self._subscribers.values())
        for wake in subscribers:
            try:
                wake(head)
            except Exception:  # a subscriber's loop may be closing: not the follower's problem
                log.debug("log follower: a subscriber failed", exc_info=True)

    def _listen(self) -> None:
        what = "log follower: LISTEN lost"
        supervise(self._listen_session, self._stopping, what=what, log=log, cap=5.0)

    def _listen_session(self) -> None:
        names = self._reader.names
        watchdog = self._reader.watchdog
        with psycopg.connect(names.conninfo, autocommit=True, connect_timeout=5) as conn:
            with watchdog.watch(conn):
                conn.execute(SQL("LISTEN {}").format(Identifier(names.channel)))
            self._woken.set()  # whatever committed before LISTEN took effect
            pinged = time.monotonic()
            while not self._stopping.is_set():
                for _ in conn.notifies(timeout=0.25, stop_after=1):
                    self._woken.set()
                if time.monotonic() - pinged >= PING_SECONDS:
                    with watchdog.watch(conn):  # a LISTEN behind a silent partition hears
                        conn.execute("SELECT 1")  # nothing: ask, and reconnect if no answer
                    pinged = time.monotonic()
