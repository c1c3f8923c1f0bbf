"""One LISTEN connection per server process, waking reads that wait for a view's position.

Workers NOTIFY `license_svc_views` inside each batch's transaction (so it fires at commit) with
a `projections.base.Notice` (view generation, positions, the accounts it changed), and a
rebuild's switch with `live:{view}:{n}`. This thread keeps the highest position heard per view
generation and wakes every waiter (one condition variable); a waiter re-reads the view only once
the position it needs was heard, or when its re-check interval passes (the safety net for a lost
connection or a missed notice). Subscribers (the account cache, watches) hear every notice, and
that LISTEN is in place or lost: what they keep is only as good as an unbroken connection.

A connection can die without a word (a network partition): after HEARTBEAT_SECONDS without a
notice the thread asks the server `SELECT 1`, with TCP keepalives and a user timeout, so a dead
connection is found within seconds and not hours.

The library's own `TrackingRecorder.wait()` polls with a first sleep of 100 ms; this is the
notification-driven wait the read path uses instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import psycopg
from psycopg.conninfo import make_conninfo

from license_svc.adapters.supervise import supervise
from projections.base import CHANNEL
from projections.changes import Notice

log = logging.getLogger("license_svc.projections")

OnSwitch = Callable[[str, int], None]
APPLICATION_NAME = "license-svc view notices"
HEARTBEAT_SECONDS = 1.0
# Found dead within ~5 s: keepalive probes on an idle socket, a user timeout on unacked sends.
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
}


class Subscriber(Protocol):
    def connected(self) -> None: ...
    def lost(self) -> None: ...
    def heard(self, notice: Notice) -> None: ...


class Notices:
    def __init__(self, conninfo: str, on_switch: OnSwitch, on_reconnect: Callable[[], None]):
        self._conninfo = conninfo
        self._on_switch = on_switch
        self._on_reconnect = on_reconnect
        self._subscribers: list[Subscriber] = []
        self.backend_pid = 0  # of the LISTEN connection (0: none): tests end it on purpose
        self._heard: dict[str, int] = {}
        self.changed = threading.Condition()
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Before `start`: `subscriber` hears every notice and every (re)connect and loss."""
        self._subscribers.append(subscriber)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def start(self, timeout: float = 5.0) -> None:
        """Start listening; the first call returns when LISTEN is in place (or `timeout`
        passed), later calls at once: while the listener reconnects, waits fall back to
        re-checking the view."""
        with self._start_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="view-notices", daemon=True)
            self._thread.start()
        self._listening.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def heard(self, view: str) -> int:
        with self.changed:
            return self._heard.get(view, 0)

    def observe(self, view: str, position: int) -> None:
        """A position learnt some other way (a read): keeps the cache from lagging behind."""
        with self.changed:
            if position > self._heard.get(view, 0):
                self._heard[view] = position

    def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(ready, timeout)

    def _run(self) -> None:
        # Capped low: back within a second of an outage.
        supervise(self._session, self._stopping, what="view notices", log=log, cap=1.0)

    def _session(self) -> None:
        try:
            with psycopg.connect(
                make_conninfo(self._conninfo, application_name=APPLICATION_NAME, **KEEPALIVE),
                autocommit=True,
                connect_timeout=5,
            ) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                self.backend_pid = conn.info.backend_pid
                for subscriber in self._subscribers:
                    subscriber.connected()
                self._listening.set()
                self._on_reconnect()  # switches may have been missed while disconnected
                self._wake()  # waiters re-check what they may have missed
                self._listen(conn)
        finally:
            self._lose()

    def _listen(self, conn: psycopg.Connection) -> None:
        quiet_since = time.monotonic()
        while not self._stopping.is_set():
            for notice in conn.notifies(timeout=0.25):
                self._hear(notice.payload)
                quiet_since = time.monotonic()
            if time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                conn.execute("SELECT 1")  # notices that arrive meanwhile wait in psycopg's backlog
                quiet_since = time.monotonic()

    def _lose(self) -> None:
        self.backend_pid = 0
        self._listening.clear()
        for subscriber in self._subscribers:
            subscriber.lost()
        self._wake()  # waiters fall back to their re-check interval meanwhile

    def _hear(self, payload: str) -> None:
        try:
            if payload.startswith("live:"):
                _, name, generation = payload.split(":")
                self._on_switch(name, int(generation))
            else:
                notice = Notice.decode(payload)
                for subscriber in self._subscribers:
                    subscriber.heard(notice)
                self.observe(notice.view, notice.last)
        except ValueError:
            log.warning("view notices: ignoring malformed notice %r", payload)
            return
        self._wake()

    def _wake(self) -> None:
        with self.changed:
            self.changed.notify_all()
