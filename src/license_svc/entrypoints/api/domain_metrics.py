"""The domain series of `/metrics`, read at scrape time on a connection of their own.

- Never the request pool: a scrape reads on one connection this collector opens itself (the
  service's hardened options, and a statement timeout of READ_TIMEOUT_SECONDS), so a slow
  scrape cannot take a connection a call needs.
- Never a scan of the store: the key counters start from the key catalog's count tables (a few
  hundred rows, read with the catalog's position in one statement) and add the store's events
  after that position, then only the rows appended since the previous scrape. The counters so
  equal the store's counts, and the first scrape of a store of any size reads the view's lag.
- Each part (key counters, positions and lag, blocked sessions) is read on its own: one that
  fails or times out keeps its last values in the scrape (the others are fresh), logs one line,
  and is tried again at the next scrape; the connection is opened again after a failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from psycopg.sql import SQL, Composed, Identifier

from license_svc.adapters.clock import Clock
from license_svc.attempts.limiter import IN_FLIGHT, blocked_sessions_query
from license_svc.config import Settings
from license_svc.keys.app import LicensingApp
from license_svc.reads.live import LiveViews
from projections.registry import NAMES

log = logging.getLogger("license_svc.metrics")

READ_TIMEOUT_SECONDS = 2.0
LEASE_EVENTS = {  # seat leases (rules §12): counted from the events after this process began
    "SeatLease.SeatLeaseGranted": "granted",
    "SeatLease.SeatLeaseReleased": "released",
    "SeatLease.SeatLeaseExpired": "expired",
}
KEY_EVENTS = {  # the key's events (a Plan has a SubscriptionExpired of its own) → counter
    "ActivationKey.KeyIssued": "issued",
    "ActivationKey.KeyActivated": "activated",
    "ActivationKey.KeyRevoked": "revoked",
    "ActivationKey.SubscriptionExpired": "expired",
}


class MetricsConnection:
    """One connection for the scrapes, opened when first needed and after a failure."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[Any] | None = None
        self.lock = threading.Lock()

    def execute(self, statement: Composed | SQL | str, params: Any = None) -> list[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
            self._conn.execute(f"SET statement_timeout = {int(READ_TIMEOUT_SECONDS * 1000)}")
        try:
            return self._conn.execute(statement, params).fetchall()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class KeyCounters:
    """Events of each key type in the store: the catalog's counts at its position, plus the
    store's events after it (incrementally)."""

    def __init__(self, app: LicensingApp, views: LiveViews) -> None:
        recorder: Any = app.recorder
        self._events = Identifier(recorder.datastore.schema, recorder.events_table_name)
        self._views = views
        self._after: int | None = None  # the position counted up to; None: not started
        self.counts: dict[str, int] = {}

    def update(self, db: MetricsConnection) -> dict[str, int]:
        if self._after is None:
            self._start(db)
        assert self._after is not None
        rows = db.execute(
            SQL(
                "SELECT topic, count(*), max(notification_id) FROM {} WHERE notification_id > %s"
                " GROUP BY topic"
            ).format(self._events),
            (self._after,),
        )
        counts, after = dict(self.counts), self._after
        for topic, n, last in rows:
            name = str(topic).rsplit(":", 1)[-1]  # module:Class.Event
            counts[name] = counts.get(name, 0) + int(n)
            after = max(after, int(last))
        self.counts, self._after = counts, after  # only a whole read moves them
        return counts

    def _start(self, db: MetricsConnection) -> None:
        catalog = self._views.view("catalog")
        counts, daily = catalog.table("counts"), catalog.table("daily")
        rows = db.execute(
            SQL(
                "SELECT p.position, (SELECT coalesce(sum(n), 0) FROM {counts}),"
                " (SELECT coalesce(sum(n), 0) FROM {daily}),"
                " (SELECT coalesce(sum(n), 0) FROM {counts} WHERE status = 'revoked'),"
                " (SELECT coalesce(sum(n), 0) FROM {counts} WHERE status = 'expired')"
                " FROM {position}"
            ).format(counts=counts, daily=daily, position=catalog.position_subquery())
        )
        position, issued, activated, revoked, expired = (int(v) for v in rows[0])
        self.counts = {
            "ActivationKey.KeyIssued": issued,
            "ActivationKey.KeyActivated": activated,
            "ActivationKey.KeyRevoked": revoked,
            "ActivationKey.SubscriptionExpired": expired,
        }
        self._after = position


class DomainCollector:
    """Read at scrape time; a part that fails keeps its last values and is retried."""

    def __init__(
        self, settings: Settings, app: LicensingApp, views: LiveViews, clock: Clock
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._views = views
        self._db = MetricsConnection(settings.conninfo())
        self._keys = KeyCounters(app, views)
        recorder: Any = app.recorder
        schema = recorder.datastore.schema
        self._head = SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(
            Identifier(schema, recorder.events_table_name)
        )
        self._blocked = blocked_sessions_query(schema)
        self._live_leases = SQL(
            "SELECT count(*) FROM {} WHERE ended IS NULL AND expires_at > %s"
        ).format(Identifier(schema, "seat_leases"))
        self._last: dict[str, list[Metric]] = {}

    def collect(self) -> Iterator[Metric]:
        with self._db.lock:
            for part, read in (
                ("keys", self._key_counters),
                ("positions", self._positions),
                ("limiter", self._limiter),
                ("seats", self._seats),
            ):
                yield from self._read(part, read)

    def close(self) -> None:
        with self._db.lock:
            self._db.close()

    def _read(self, part: str, read: Callable[[], list[Metric]]) -> list[Metric]:
        try:
            self._last[part] = read()
        except Exception as error:  # a scrape must not fail because the database did
            log.warning(
                "metrics: %s not read (%s); keeping the last values", part, str(error).strip()
            )
        return self._last.get(part, [])

    def _key_counters(self) -> list[Metric]:
        counts = self._keys.update(self._db)
        return [
            CounterMetricFamily(
                f"license_svc_keys_{short}",
                f"{name.split('.')[1]} events in the store (the catalog's counts + the log).",
                value=counts.get(name, 0),
            )
            for name, short in KEY_EVENTS.items()
        ]

    def _positions(self) -> list[Metric]:
        head = int(self._db.execute(self._head)[0][0])
        store = GaugeMetricFamily("license_svc_store_position", "The store's last position.")
        store.add_metric([], head)
        position = GaugeMetricFamily(
            "license_svc_projection_position", "The position a view has processed.", labels=["view"]
        )
        lag = GaugeMetricFamily(
            "license_svc_projection_lag_events",
            "Events in the store a view has not processed yet.",
            labels=["view"],
        )
        for name in NAMES:
            view = self._views.view(name)
            at = int(self._db.execute(SQL("SELECT {}").format(view.position_subquery()))[0][0])
            position.add_metric([name], at)
            lag.add_metric([name], max(0, head - at))
        return [store, position, lag]

    def _limiter(self) -> list[Metric]:
        settings = self._settings
        window = timedelta(seconds=settings.session_block_seconds)
        rows = self._db.execute(self._blocked, (window, IN_FLIGHT, settings.session_attempt_limit))
        blocked = GaugeMetricFamily(
            "license_svc_blocked_sessions", "Sessions blocked by the failed-attempt limiter now."
        )
        blocked.add_metric([], int(rows[0][0]) if rows else 0)
        return [blocked]

    def _seats(self) -> list[Metric]:
        """Seat leases live now (by the service's clock, as the leases are granted), and the
        lease events the key counters saw after the catalog position they started from."""
        rows = self._db.execute(self._live_leases, (self._clock(),))
        live = GaugeMetricFamily(
            "license_svc_seat_leases_live", "Seat leases live now (granted, not ended, not past)."
        )
        live.add_metric([], int(rows[0][0]) if rows else 0)
        counts = self._keys.counts
        return [
            live,
            *(
                CounterMetricFamily(
                    f"license_svc_seat_leases_{short}",
                    f"{name.split('.')[1]} events appended since this process's first scrape.",
                    value=counts.get(name, 0),
                )
                for name, short in LEASE_EVENTS.items()
            ),
        ]
