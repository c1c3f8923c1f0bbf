"""The gRPC server: business servicers, health, reflection, one guard interceptor.

A `grpc.aio` server whose event loop runs on a thread of its own. Most unary methods stay sync
functions (the `eventsourcing` library has no asyncio API; each call is a short Postgres round
trip): the aio server runs them on its thread pool of `grpc_workers` threads, as the sync
server did. A few are coroutines, where the hop to a thread and back cost more than the work:
cache hits, seat acquires and releases (waiting for their group's commit) and heartbeats (one
statement on the loop's own small pool). Streaming methods are coroutines on the loop
(`streaming.py`): a follower that stays connected for a day holds no thread, so streams never
take the threads unary calls need.
(A sync grpcio server runs each stream's generator on a pool thread for the stream's life, and
a second server for streams would need a second port; see the README for the measurements.)
`stop()` is graceful (the CLI calls it on SIGTERM/SIGINT): health turns NOT_SERVING, new calls
are refused, in-flight calls get `grace_seconds` to finish.
Health follows the service's background database check: NOT_SERVING while the database is
unreachable, when business calls are answered UNAVAILABLE at once (`availability.py`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent import futures
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from license_svc.access.auth import TokenTable
from license_svc.adapters.dbhealth import DatabaseMonitor
from license_svc.config import ConfigError
from license_svc.keys.dialog import ActivationDialog
from license_svc.plans.book import PlanBook
from license_svc.reads.feed import LogFeed
from license_svc.reads.pointintime import PointInTime
from license_svc.seats.book import SeatBook
from license_svc.startup import signing_keys_for, tokens_for
from license_svc.tokens.keys import KeyRing
from license_svc.tokens.mint import AllowanceTokens

from .activation import ActivationServicer
from .audit import AuditServicer
from .availability import AvailabilityGate
from .billing import BillingServicer
from .calllog import CallLog, Fanout
from .entitlements import EntitlementServicer
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc
from .interceptor import GuardInterceptor, Observer
from .keys import KeyServicer
from .metrics import Metrics
from .metrics import Parts as MetricsParts
from .ops import OpsServicer
from .seats import SeatServicer
from .streaming import Streams
from .tls import TlsFiles
from .webhooks import WebhookServicer

if TYPE_CHECKING:
    from license_svc.bootstrap import Service

log = logging.getLogger("license_svc.server")

SERVICE_NAMES = [d.full_name for d in pb.DESCRIPTOR.services_by_name.values()]
T = TypeVar("T")


class Parts(MetricsParts, Protocol):
    """What the server serves (and its metrics read); `server_for` hands in the Service."""

    @property
    def dialog(self) -> ActivationDialog: ...
    @property
    def plans(self) -> PlanBook: ...
    @property
    def feed(self) -> LogFeed: ...
    @property
    def monitor(self) -> DatabaseMonitor: ...
    @property
    def seats(self) -> SeatBook: ...


class Server:
    def __init__(
        self,
        service: Parts,
        tokens: TokenTable,
        keys: KeyRing | None = None,
    ) -> None:
        settings = service.settings
        self.service = service
        self.tokens = tokens  # `reload()` on SIGHUP (cli)
        self.keys = keys  # the allowance tokens' keys, reloaded with the tokens (`reload`)
        signer = AllowanceTokens(keys, settings.allowance_token_ttl_seconds) if keys else None
        # /metrics is off when LICENSE_SVC_METRICS_LISTEN is empty; the call log is always on.
        self.metrics = Metrics(service) if settings.metrics_listen else None
        observers: list[Observer] = [CallLog()]
        if self.metrics is not None:
            observers.insert(0, self.metrics.grpc)
        self.health = Health(experimental_non_blocking=True)
        self.streams = Streams(
            service.feed,
            settings.max_streams,
            settings.stream_stall_seconds,
            settings.stream_share_percent,
        )
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="grpc-loop", daemon=True
        )
        self._loop_thread.start()
        limit = settings.max_message_bytes
        self.grpc = self._on_loop(
            _make_server(
                futures.ThreadPoolExecutor(
                    max_workers=settings.grpc_workers, thread_name_prefix="rpc"
                ),
                # The gate inside the guard: calls are authenticated, then refused at once
                # while the background check finds the database down.
                interceptors=[
                    GuardInterceptor(tokens, Fanout(observers)),
                    AvailabilityGate(lambda: service.monitor.up),
                ],
                options=[
                    # One server per port unless we mean otherwise (bench runs several on purpose).
                    ("grpc.so_reuseport", int(settings.so_reuseport)),
                    ("grpc.max_receive_message_length", limit),
                    ("grpc.max_send_message_length", limit),
                    # gRPC core cancels calls that arrive faster than the server takes them in
                    # past 1,000 waiting (3,000 at once): a burst of reconnecting watchers would
                    # end CANCELLED before reaching the stream cap, which is the limit we mean.
                    ("grpc.server.max_pending_requests", max(1_000, settings.max_streams)),
                    (
                        "grpc.server.max_pending_requests_hard_limit",
                        max(3_000, 2 * settings.max_streams),
                    ),
                ],
            )
        )
        app = service.app
        views, max_wait = service.views, settings.max_wait_seconds
        pb_grpc.add_KeyServiceServicer_to_server(KeyServicer(app, views, max_wait), self.grpc)
        pb_grpc.add_ActivationServiceServicer_to_server(
            ActivationServicer(service.dialog), self.grpc
        )
        pb_grpc.add_EntitlementServiceServicer_to_server(
            EntitlementServicer(
                views,
                service.clock,
                max_wait,
                self.streams,
                PointInTime(app, views),
                misses=settings.pool_size,  # one thread per pooled connection, no more
                settle_seconds=settings.settle_seconds,
                tokens=signer,
            ),
            self.grpc,
        )
        pb_grpc.add_AuditServiceServicer_to_server(AuditServicer(app, self.streams), self.grpc)
        pb_grpc.add_OpsServiceServicer_to_server(
            OpsServicer(
                views,
                app.recorder.max_notification_id,
                clock=service.clock,
                limiter=service.limiter,
            ),
            self.grpc,
        )
        pb_grpc.add_BillingServiceServicer_to_server(BillingServicer(service.plans), self.grpc)
        pb_grpc.add_WebhookServiceServicer_to_server(
            WebhookServicer(getattr(service, "webhooks", None)), self.grpc
        )
        pb_grpc.add_SeatServiceServicer_to_server(
            SeatServicer(service.seats, views.cache.forget), self.grpc
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            [*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME], self.grpc
        )
        self.tls = (
            TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
            if settings.tls_cert and settings.tls_key
            else None
        )
        self.port = self._on_loop(_call(self._bind, settings.listen))

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _bind(self, address: str) -> int:
        if self.tls is not None:  # re-read for new connections on SIGHUP or a changed file
            return self.grpc.add_secure_port(address, self.tls.credentials())
        return self.grpc.add_insecure_port(address)

    def reload(self) -> None:
        """SIGHUP: re-read the token table, the signing keys and the TLS files; a bad file
        keeps what is in use (each says so in one log line)."""
        self.tokens.reload()
        if self.keys is not None:
            self.keys.reload()
        if self.tls is not None:
            self.tls.reload()

    def start(self) -> None:
        if self.metrics is not None:
            self._serve_metrics(self.metrics, self.service.settings.metrics_listen)
        self.service.views.start()  # listen for view notices before the first read waits
        self.service.feed.start()  # the one follower of the store's log the streams share
        # The first database check before the first call: the gate and health know the truth
        # from the start (grpc's health servicer would otherwise say SERVING by default).
        self.service.monitor.start()
        self.service.monitor.listen(self._database_changed)
        self._on_loop(self.grpc.start())
        log.debug("serving on port %d", self.port)  # the CLI logs what it runs with

    def _database_changed(self, up: bool) -> None:
        """Health follows the background database check (ignored once shutting down)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if up
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *SERVICE_NAMES]:
            self.health.set(name, status)

    def stop(self, grace: float) -> None:
        self.health.enter_graceful_shutdown()
        if not self._loop.is_closed():
            self._on_loop(self.grpc.stop(grace))
            self._on_loop(self.streams.close())
            self.service.seats.close_loop_pool()  # its connections belong to the loop
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(5.0)
            self._loop.close()
        if self.metrics is not None:
            self.metrics.close()

    def _serve_metrics(self, metrics: Metrics, address: str) -> None:
        try:
            metrics.serve(address)
        except (OSError, ValueError) as error:  # a taken port is a start-up failure, said once
            raise ConfigError(f"LICENSE_SVC_METRICS_LISTEN={address}: {error}") from None


async def _make_server(
    pool: futures.ThreadPoolExecutor, interceptors: list[Any], options: list[tuple[str, Any]]
) -> grpc.aio.Server:
    """Built on the loop's thread, so the server belongs to that loop. `migration_thread_pool`
    runs the sync (unary) handlers."""
    return grpc.aio.server(migration_thread_pool=pool, interceptors=interceptors, options=options)


async def _call(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


class Health(health.HealthServicer):
    """The stock servicer (its `set` may be called from any thread), with a `Watch` that waits
    on the event loop instead of holding a pool thread for as long as the watcher stays."""

    async def Watch(  # type: ignore[override]
        self, request: Any, context: Any, send_response_callback: Any = None
    ) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        changes: asyncio.Queue[Any] = asyncio.Queue(maxsize=16)

        def send(response: Any) -> None:
            loop.call_soon_threadsafe(_offer, changes, response)

        super().Watch(request, _DoneCallbacks(context), send_response_callback=send)  # type: ignore[arg-type]
        while True:
            yield await changes.get()


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    if queue.full():  # a watcher wants the latest status, not every one
        queue.get_nowait()
    queue.put_nowait(item)


class _DoneCallbacks:
    """Sync servicers register clean-ups with `add_callback`; aio names it `add_done_callback`."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def add_callback(self, callback: Callable[[], None]) -> None:
        self._context.add_done_callback(lambda _: callback())


def server_for(
    service: Service, tokens: TokenTable | None = None, keys: KeyRing | None = None
) -> Server:
    """The gRPC server over a built service, with the token table and the signing keys its
    settings name (no keys when none is set: `serve` refuses that before it gets here)."""
    settings = service.settings
    keys = keys or signing_keys_for(settings, required=False)
    return Server(service, tokens or tokens_for(settings), keys)
