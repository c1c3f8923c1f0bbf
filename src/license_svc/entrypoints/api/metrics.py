"""Prometheus `/metrics`: gRPC server metrics from the interceptor, domain metrics from the store.

gRPC metrics use the names and labels of go-grpc-prometheus / py-grpc-prometheus
(`grpc_server_started_total`, `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,
grpc_code}`, `grpc_server_handling_seconds`, `grpc_server_msg_sent_total`), fed by the
interceptor's `Observer` hook. Domain metrics are read when Prometheus scrapes, never on the call
path, on a connection of their own and never by a scan of the store (`domain_metrics.py`): keys
issued/activated/revoked/expired equal the store's counts (the catalog's count tables at its
position, plus the log's events after it, incrementally); failed attempts by method and reason are
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

from license_svc import netaddr
from license_svc.adapters.clock import Clock
from license_svc.attempts.limiter import AttemptLimiter
from license_svc.config import Settings
from license_svc.keys.app import LicensingApp
from license_svc.reads.live import LiveViews

from .domain_metrics import DomainCollector
from .gen import licensing_pb2 as pb
from .interceptor import Call
from .webhook_metrics import webhook_metrics

log = logging.getLogger("license_svc.metrics")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ATTEMPT_METHODS = {"ValidateKey", "ActivateKey"}  # the calls the failed-attempt limiter counts


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


class PoolCollector:
    """This process's database pool and clock offset, from memory (no query)."""

    def __init__(self, parts: Parts) -> None:
        self._datastore: PostgresDatastore = parts.app.recorder.datastore  # type: ignore[attr-defined]
        self._monitor = getattr(parts, "monitor", None)

    def collect(self) -> Iterator[Metric]:
        yield from self._pool()
        if self._monitor is not None:
            offset = GaugeMetricFamily(
                "license_svc_clock_offset_seconds",
                "How far this process's clock is ahead of the database's (last health check).",
            )
            offset.add_metric([], float(self._monitor.offset))
            yield offset

    def _pool(self) -> Iterator[Metric]:
        pool = getattr(self._datastore, "pool", None)
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


class ServiceCollector:
    """What this process knows in memory or asks its own parts: its append transactions (group
    commit) and, where it serves WebhookService, each endpoint's delivery health."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Metric]:
        yield from self._appends()
        endpoints = getattr(self._parts, "webhooks", None)
        if endpoints is not None:
            try:
                yield from webhook_metrics(endpoints.health(), self._parts.clock())
            except Exception as error:  # a scrape must not fail because the database did
                log.warning("metrics: webhook endpoints not read: %s", str(error).strip())

    def _appends(self) -> Iterator[Metric]:
        """This process's append transactions, and how many saves group commit put in them."""
        recorder = self._parts.app.store
        trips, group = recorder.round_trips, recorder.group_commit
        for name, doc, value in [
            ("transactions", "Append transactions this process committed.", trips.count),
            ("transaction_seconds", "Their time, BEGIN sent to COMMIT answered.", trips.seconds),
            ("groups", "Group-commit transactions.", group.groups if group else 0),
            ("grouped", "Saves written in them.", group.appends if group else 0),
        ]:
            yield CounterMetricFamily(f"license_svc_append_{name}", doc, value=value)


class Metrics:
    """The registry of one server process and the HTTP endpoint that exposes it."""

    def __init__(self, parts: Parts) -> None:
        disable_created_metrics()  # no `*_created` series: they double the scrape for nothing
        self.registry = CollectorRegistry()
        self.grpc = GrpcMetrics(self.registry)
        settings = parts.settings
        if settings.metrics_database_url:  # the read-only role's connection (least privilege)
            settings = settings.with_(database_url=settings.metrics_database_url)
        self.domain = DomainCollector(settings, parts.app, parts.views, parts.clock)
        self.registry.register(self.domain)  # type: ignore[arg-type]
        self.registry.register(PoolCollector(parts))  # type: ignore[arg-type]
        self.registry.register(ServiceCollector(parts))  # type: ignore[arg-type]
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
        self.domain.close()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
