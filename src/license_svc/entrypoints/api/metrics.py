"""Prometheus `/metrics`: gRPC server metrics from the interceptor, domain metrics from the store.

gRPC metrics use the names and labels of go-grpc-prometheus / py-grpc-prometheus
(`grpc_server_started_total`, `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,
grpc_code}`, `grpc_server_handling_seconds`, `grpc_server_msg_sent_total`), fed by the
interceptor's `Observer` hook. Domain metrics are read when Prometheus scrapes (`DomainCollector`),
never on the call path: keys issued/activated/revoked/expired are counted from the events in the
store's notification log (incrementally: each scrape reads only the rows appended since the
previous one, so the counters equal the store's counts); failed attempts by method and reason are
counted by this process as it answers them; blocked sessions, projection position and lag per
view, and the database pool are gauges. Each server process has its own registry and port (no
multiprocess mode): several replicas on one host each need their own `LICENSE_SVC_METRICS_LISTEN`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from eventsourcing.postgres import PostgresDatastore
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from psycopg.sql import SQL, Identifier

from license_svc import netaddr
from license_svc.adapters.application import EventStore
from license_svc.adapters.clock import Clock
from license_svc.attempts.limiter import AttemptLimiter, blocked_sessions
from license_svc.config import Settings
from license_svc.keys.app import LicensingApp
from license_svc.reads.live import LiveViews

from .gen import licensing_pb2 as pb
from .interceptor import Call
from .webhook_metrics import webhook_metrics

log = logging.getLogger("license_svc.metrics")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KEY_EVENTS = {  # the key's events (a Plan has a SubscriptionExpired of its own) → counter
    "ActivationKey.KeyIssued": "issued",
    "ActivationKey.KeyActivated": "activated",
    "ActivationKey.KeyRevoked": "revoked",
    "ActivationKey.SubscriptionExpired": "expired",
}
ATTEMPT_METHODS = {"ValidateKey", "ActivateKey"}  # the calls the failed-attempt limiter counts
LEASE_EVENTS = {  # seat leases (rules §12): counted from the events like the keys'
    "SeatLease.SeatLeaseGranted": "granted",
    "SeatLease.SeatLeaseReleased": "released",
    "SeatLease.SeatLeaseExpired": "expired",
}


class Parts(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def app(self) -> LicensingApp: ...
    @property
    def views(self) -> LiveViews: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def limiter(self) -> AttemptLimiter: ...


class Reads(Protocol):
    """Where the domain metrics are read: the service's parts, or the read-only role's."""

    @property
    def settings(self) -> Settings: ...
    @property
    def app(self) -> EventStore: ...
    @property
    def views(self) -> LiveViews: ...


class OwnReads(Reads, Protocol):
    def close(self) -> None: ...


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class _MethodMetrics:
    """One method's label children, looked up once (a `labels()` call per call costs more)."""

    def __init__(self, metrics: GrpcMetrics, method: str, grpc_type: str) -> None:
        service, name = _split(method)
        self.labels = (grpc_type, service, name)
        self.started = metrics._started.labels(*self.labels)
        self.seconds = metrics._seconds.labels(*self.labels)
        self.sent = metrics._sent.labels(*self.labels)
        self.handled: dict[str, Any] = {}
        self._handled = metrics._handled

    def handled_for(self, code: str) -> Any:
        child = self.handled.get(code)
        if child is None:
            child = self.handled[code] = self._handled.labels(*self.labels, code)
        return child


class GrpcMetrics:
    """The interceptor's observer: counts and times every call."""

    def __init__(self, registry: CollectorRegistry) -> None:
        names = ["grpc_type", "grpc_service", "grpc_method"]
        self._started = Counter(
            "grpc_server_started", "RPCs started on the server.", names, registry=registry
        )
        self._handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, regardless of success or failure.",
            [*names, "grpc_code"],
            registry=registry,
        )
        self._seconds = Histogram(
            "grpc_server_handling_seconds",
            "Response latency (seconds) of RPCs handled by the server.",
            names,
            buckets=BUCKETS,
            registry=registry,
        )
        self._sent = Counter(
            "grpc_server_msg_sent", "gRPC messages sent by the server.", names, registry=registry
        )
        self.failed_attempts = Counter(
            "license_svc_failed_attempts",
            "Failed ValidateKey/ActivateKey calls answered by this process, by reason.",
            ["grpc_method", "reason"],
            registry=registry,
        )
        self.seat_denials = Counter(
            "license_svc_seat_denials",
            "AcquireSeat calls this process refused because every seat was leased.",
            registry=registry,
        )
        self._methods: dict[str, _MethodMetrics] = {}
        self._lock = threading.Lock()
        for service in pb.DESCRIPTOR.services_by_name.values():  # every series exists from 0
            for method in service.methods:
                kind = "server_stream" if method.server_streaming else "unary"
                self._for(f"/{service.full_name}/{method.name}", kind).handled_for("OK")

    def _for(self, method: str, grpc_type: str) -> _MethodMetrics:
        found = self._methods.get(method)
        if found is None:
            with self._lock:
                found = self._methods.get(method)
                if found is None:
                    found = self._methods[method] = _MethodMetrics(self, method, grpc_type)
        return found

    def started(self, call: Call) -> None:
        self._for(call.method, call.grpc_type).started.inc()

    def sent(self, call: Call) -> None:
        self._for(call.method, call.grpc_type).sent.inc()

    def handled(self, call: Call) -> None:
        children = self._for(call.method, call.grpc_type)
        children.handled_for(call.code).inc()
        children.seconds.observe(call.seconds)
        if call.grpc_type == "unary" and call.sent:
            children.sent.inc()
        if call.reason and call.code != "OK":
            name = _split(call.method)[1]
            if name in ATTEMPT_METHODS:
                self.failed_attempts.labels(name, call.reason).inc()
            elif name == "AcquireSeat" and call.reason == "NO_SEAT_AVAILABLE":
                self.seat_denials.inc()


class StoreCounts:
    """Events by aggregate class and event name (`ActivationKey.KeyIssued`), counted from the
    notification log incrementally. Notification ids are assigned and committed in order
    (writers hold the table lock), so once id N is visible no smaller id can appear later:
    reading `> last seen` never misses a row."""

    def __init__(self, app: EventStore) -> None:
        datastore: PostgresDatastore = app.recorder.datastore  # type: ignore[attr-defined]
        self._datastore = datastore
        table = Identifier(datastore.schema, app.recorder.events_table_name)  # type: ignore[attr-defined]
        self._query = SQL(
            "SELECT topic, count(*) AS n, max(notification_id) AS last FROM {}"
            " WHERE notification_id > %s GROUP BY topic"
        ).format(table)
        self._after = 0
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self) -> dict[str, int]:
        with self._lock, self._datastore.transaction(commit=False) as curs:
            curs.execute(self._query, (self._after,))
            for row in curs.fetchall():
                name = str(row["topic"]).rsplit(":", 1)[-1]  # module:Class.Event
                self.counts[name] = self.counts.get(name, 0) + int(row["n"])
                self._after = max(self._after, int(row["last"]))
            return dict(self.counts)


class DomainCollector:
    """Read at scrape time; a failing read drops the domain metrics from that scrape only.
    `reads`: the store and views to read (the read-only role's, or the service's own `parts`);
    the pool gauges are always the service's."""

    def __init__(self, parts: Parts, reads: Reads) -> None:
        self._parts = reads
        self._events = StoreCounts(reads.app)
        datastore: PostgresDatastore = reads.app.recorder.datastore  # type: ignore[attr-defined]
        self._datastore = datastore
        pool_of: PostgresDatastore = parts.app.recorder.datastore  # type: ignore[attr-defined]
        self._pool_of = pool_of
        self._service = parts  # the service's own: appends, webhooks, the limiter's limits
        self._live_leases = SQL(
            "SELECT count(*) AS n FROM {} WHERE ended IS NULL AND expires_at > %s"
        ).format(Identifier(datastore.schema, "seat_leases"))

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._store()
            yield from self._views()
            yield from self._limiter()
            yield from self._webhooks()
            yield from self._seats()
        except Exception as error:  # a scrape must not fail because the database did
            log.warning("metrics: domain metrics unavailable: %s", error)
        yield from self._pool()
        yield from self._appends()

    def _appends(self) -> Iterator[Metric]:
        """This process's append transactions, and how many saves group commit put in them."""
        recorder = self._service.app.store
        trips, group = recorder.round_trips, recorder.group_commit
        for name, doc, value in [
            ("transactions", "Append transactions this process committed.", trips.count),
            ("transaction_seconds", "Their time, BEGIN sent to COMMIT answered.", trips.seconds),
            ("groups", "Group-commit transactions.", group.groups if group else 0),
            ("grouped", "Saves written in them.", group.appends if group else 0),
        ]:
            yield CounterMetricFamily(f"license_svc_append_{name}", doc, value=value)

    def _store(self) -> Iterator[Metric]:
        counts = self._events.update()
        for name, short in KEY_EVENTS.items():
            yield CounterMetricFamily(
                f"license_svc_keys_{short}",
                f"{name.split('.')[1]} events in the store (counted from the notification log).",
                value=counts.get(name, 0),
            )
        for name, short in LEASE_EVENTS.items():
            yield CounterMetricFamily(
                f"license_svc_seat_leases_{short}",
                f"{name.split('.')[1]} events in the store (counted from the notification log).",
                value=counts.get(name, 0),
            )

    def _views(self) -> Iterator[Metric]:
        head = self._parts.app.recorder.max_notification_id() or 0
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
        for name, at in self._parts.views.status():
            position.add_metric([name], at)
            lag.add_metric([name], max(0, head - at))
        yield from (store, position, lag)

    def _limiter(self) -> Iterator[Metric]:
        blocked = GaugeMetricFamily(
            "license_svc_blocked_sessions", "Sessions blocked by the failed-attempt limiter now."
        )
        limits = self._service.limiter.limits
        blocked.add_metric([], blocked_sessions(self._datastore, limits))
        yield blocked

    def _webhooks(self) -> Iterator[Metric]:
        endpoints = getattr(self._service, "webhooks", None)
        if endpoints is not None:
            yield from webhook_metrics(endpoints.health(), self._service.clock())

    def _seats(self) -> Iterator[Metric]:
        """Seat leases live now, by the service's clock (the lease table is every replica's)."""
        with self._datastore.transaction(commit=False) as curs:
            leases = curs.execute(self._live_leases, (self._service.clock(),)).fetchone()
        live = GaugeMetricFamily(
            "license_svc_seat_leases_live", "Seat leases live now (granted, not ended, not past)."
        )
        live.add_metric([], int(leases["n"]) if leases else 0)
        yield live

    def _pool(self) -> Iterator[Metric]:
        pool = getattr(self._pool_of, "pool", None)
        stats = pool.get_stats() if pool is not None and hasattr(pool, "get_stats") else {}
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        for name, doc, value in [
            ("size", "Connections the database pool holds.", size),
            ("in_use", "Pool connections lent out now.", max(0, size - available)),
            ("waiting", "Callers waiting for a pool connection.", stats.get("requests_waiting", 0)),
            ("max", "The pool's upper bound (size + overflow).", stats.get("pool_max", 0)),
        ]:
            gauge = GaugeMetricFamily(f"license_svc_db_pool_{name}", doc)
            gauge.add_metric([], value)
            yield gauge


class Metrics:
    """The registry of one server process and the HTTP endpoint that exposes it."""

    def __init__(self, parts: Parts, reads: OwnReads | None = None) -> None:
        disable_created_metrics()  # no `*_created` series: they double the scrape for nothing
        self.registry = CollectorRegistry()
        self.grpc = GrpcMetrics(self.registry)
        self._reads = reads  # closed with the endpoint
        self.registry.register(DomainCollector(parts, reads or parts))  # type: ignore[arg-type]
        # The process's own: RSS and CPU (process_*), and the garbage collector's runs per
        # generation (python_gc_*), which `LICENSE_SVC_GC_THRESHOLD` tunes.
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._http: Any = None
        self.port = 0

    def serve(self, address: str) -> int:
        parsed = netaddr.parse(address)
        host = parsed.host
        self._http, _thread = start_http_server(parsed.port, addr=host, registry=self.registry)
        self.port = int(self._http.server_port)
        log.info("metrics on http://%s:%d/metrics", host, self.port)
        return self.port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._reads is not None:
            self._reads.close()
            self._reads = None
