"""The composition root: settings in, a wired service out. Nothing else constructs parts."""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import psycopg
from eventsourcing.postgres import PostgresDatastore

from license_svc.adapters import embedded as embedded_db
from license_svc.adapters import fingerprint, readstore, schema
from license_svc.adapters import pools as dbpool
from license_svc.adapters.clock import Clock, utcnow
from license_svc.adapters.dbhealth import DatabaseMonitor
from license_svc.adapters.supervise import Periodic
from license_svc.attempts.limiter import AttemptLimiter, Limits
from license_svc.attempts.upkeep import purge
from license_svc.config import KEEPALIVE_BOUND, ROUND_TRIP_GRACE, Settings
from license_svc.domain.identity import KeyIdentity
from license_svc.keys.app import LicensingApp
from license_svc.keys.dialog import ActivationDialog
from license_svc.keys.sweeper import Sweeper
from license_svc.plans.book import PlanBook
from license_svc.reads.feed import LogFeed
from license_svc.reads.live import LiveViews
from license_svc.reads.storelog import StoreNames
from license_svc.seats.book import SeatBook
from license_svc.seats.sweeper import LeaseSweeper
from license_svc.startup import DependencyDown, in_chain, one_line
from license_svc.webhooks.endpoints import Endpoints
from license_svc.webhooks.router import Reminders, Router
from license_svc.webhooks.sender import Policy, Sender
from license_svc.webhooks.signing import SecretBox
from license_svc.webhooks.tables import WebhookTables
from license_svc.webhooks.worker import WebhookWorker
from projections.registry import NAMES
from projections.workers.runner import ProjectionWorkers

log = logging.getLogger(__name__)
SCHEMA_LOCK = zlib.crc32(b"license-svc/bootstrap/schema")
BUILD_ATTEMPTS = 5
CONTENDED = (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable)


def with_database(settings: Settings) -> Settings:
    """Use LICENSE_SVC_DATABASE_URL, else (development only) start the embedded PostgreSQL
    under var/."""
    if settings.database_url or not settings.dev:
        return settings
    try:
        url = embedded_db.start(settings.var_dir / "pg")
    except Exception as error:  # the library raises its own and OS errors: one line either way
        raise DependencyDown(
            f"LICENSE_SVC_DATABASE_URL is unset and the embedded PostgreSQL under"
            f" {settings.var_dir} did not start: {one_line(error)}"
        ) from None
    log.info(
        "LICENSE_SVC_DATABASE_URL is unset: using the embedded PostgreSQL under %s",
        settings.var_dir,
    )
    return settings.with_(database_url=url)


class Background(Protocol):
    def stop(self, timeout: float = ...) -> None: ...


@dataclass
class Service:
    settings: Settings
    app: LicensingApp
    limiter: AttemptLimiter
    dialog: ActivationDialog
    clock: Clock
    views: LiveViews
    plans: PlanBook
    feed: LogFeed
    monitor: DatabaseMonitor
    seats: SeatBook
    # Whether this process's role may run DDL (else `migrate` made the schema: see
    # `adapters/schema.py`); what it starts in-process (the views' worker) follows it.
    schema_owner: bool = True
    background: list[Background] = field(default_factory=list)
    endpoints: list[Background] = field(default_factory=list)
    webhooks: Endpoints | None = None  # WebhookService's endpoints and delivery log

    @property
    def datastore(self) -> PostgresDatastore:
        datastore: PostgresDatastore = self.app.recorder.datastore  # type: ignore[attr-defined]
        return datastore

    def sweeper(self) -> Sweeper:
        return Sweeper(
            self.app,
            lambda: self.views.catalog,
            self.clock,
            batch=self.settings.sweep_batch,
            plans=(self.plans, lambda: self.views.allowance),
        )

    def serving(self) -> bool:
        """What this process's health endpoint reports: the database reachable and every
        background task that runs threads (projection worker, sweeper) alive."""
        alive = [task.is_alive for task in self.background if hasattr(task, "is_alive")]
        return self.monitor.up and all(check() for check in alive)

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.stop()
        self.endpoints.clear()
        for task in reversed(self.background):  # they use the app's pool: stop them first
            task.stop()
        self.background.clear()
        self.seats.close()
        self.monitor.stop()
        self.views.close()
        self.feed.close()
        self.app.close()


@contextmanager
def schema_lock(settings: Settings) -> Iterator[bool]:
    """Serialise table creation across processes starting at once on a fresh database: two
    concurrent CREATE TABLE IF NOT EXISTS of one table can both pass the check and collide in
    pg_type. Held on a connection of its own for the whole of `build`. Yields whether this
    role may change the schema; a role that may not finds it current or refuses to start."""
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        name = schema.schema_of(settings.eventsourcing_env())
        owner = schema.may_change(conn, name)
        if not owner:
            schema.require_current(conn, name, settings.database_label())
        yield owner  # closing the connection releases the lock


def build(settings: Settings, clock: Clock = utcnow) -> Service:
    """Wire the service. Creating the schema takes table locks that running workers and servers
    contend for (an `ALTER TABLE … IF NOT EXISTS` takes an ACCESS EXCLUSIVE lock even when it
    changes nothing), so a restart under load can meet a deadlock: retried a few times."""
    settings.eventsourcing_env()  # raises ConfigError when there is no database to lock
    for attempt in range(1, BUILD_ATTEMPTS + 1):
        with schema_lock(settings) as owner:
            try:
                return _build(settings, clock, owner)
            except Exception as error:
                if attempt == BUILD_ATTEMPTS or not _contended(error):
                    raise
                log.warning(
                    "start-up: %s; retrying (%d/%d)", one_line(error), attempt, BUILD_ATTEMPTS
                )
        time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def _contended(error: BaseException) -> bool:
    """A deadlock or lock timeout anywhere in the chain (the library re-raises its own types)."""
    return in_chain(error, CONTENDED) is not None or "deadlock detected" in str(error)


def _build(settings: Settings, clock: Clock, owner: bool = True) -> Service:
    # The limiter counts on the database's clock, one timeline for every replica, unless a test
    # injected a clock of its own. The test-only offset shifts this process's clock (a replica
    # whose host clock is off) and so, on purpose, not the limiter's.
    attempt_clock = None if clock is utcnow else clock
    if clock is utcnow and settings.clock_offset_seconds:
        offset = timedelta(seconds=settings.clock_offset_seconds)
        clock = lambda: utcnow() + offset  # noqa: E731
    app = LicensingApp(
        env={**settings.eventsourcing_env(), "CREATE_TABLE": "y" if owner else "n"},
        identity=KeyIdentity(settings.pepper) if settings.pepper else None,
        clock=clock,
    )
    try:
        return _wire(settings, app, clock, attempt_clock, owner)
    except BaseException:
        app.close()  # its pool is open: a failed start-up leaves no connection behind
        raise


def _wire(
    settings: Settings,
    app: LicensingApp,
    clock: Clock,
    attempt_clock: Clock | None,
    owner: bool,
) -> Service:
    limits = Limits(
        session_limit=settings.session_attempt_limit,
        session_window=timedelta(seconds=settings.session_block_seconds),
        account_limit=settings.account_attempt_limit,
        account_window=timedelta(seconds=settings.account_window_seconds),
    )
    datastore: PostgresDatastore = app.recorder.datastore  # type: ignore[attr-defined]
    if settings.pepper:  # a process without it (worker, dashboard, tool) mints no code
        fingerprint.check_pepper(datastore, settings.pepper, create=owner)
    elif owner:
        with datastore.transaction(commit=True) as curs:
            schema.create_table(curs, datastore.schema)
    limiter = AttemptLimiter(datastore, limits, attempt_clock)
    if owner:
        limiter.create_table()
    views = LiveViews(
        datastore,
        settings.conninfo(),
        settings.view_recheck_seconds,
        settings.cache_entries,
        read_datastore=readstore.read_datastore(settings),  # a standby's, when set
    )
    views.ensure_tables(create=owner)
    plans = PlanBook(app, app.identity if settings.pepper else None, clock)
    feed = LogFeed.build(
        StoreNames(
            settings.conninfo(),  # keepalives, user and statement timeouts: a partition ends
            datastore.schema or "public",
            app.store.events_table_name,
            app.store.channel_name,
        ),
        threads=settings.stream_read_threads,
        window=settings.stream_window,
        timeout=settings.connect_timeout,
        # A silent partition pins no stream thread past the statement timeout (and a grace
        # for the server's own answer), and a live stream ends once the log was silent for
        # as long as TCP keepalives take to give up on a peer.
        round_trip=settings.statement_timeout + ROUND_TRIP_GRACE,
        silence=KEEPALIVE_BOUND,
    )
    dialog = ActivationDialog(app, limiter)
    # Seat leases count on the database's clock like the limiter (one timeline for every
    # replica), against the allowance view's live generation, read in their own transaction.
    # Heartbeats run on the server's event loop, on a few connections of their own.
    loop_pool = dbpool.LoopPool(datastore, settings.heartbeat_connections, settings.pool_timeout)
    seats = SeatBook(
        app, lambda: views.allowance, attempt_clock, refresh=views.refresh, loop_pool=loop_pool
    )
    if owner:
        seats.create_table()
    views.leases = seats  # GetSeatAllowance and its watch show seats_leased
    dbpool.serve_quickly(datastore, settings.pool_timeout)  # built: calls wait no longer
    monitor = DatabaseMonitor(
        settings.conninfo(),
        settings.database_label(),
        settings.health_interval_seconds,
        pools=[*dbpool.pools_of(datastore), loop_pool],
        failures=settings.health_failures,
        clock=clock if attempt_clock is None else None,  # the real clock (not a test's)
        max_offset=settings.max_clock_offset_ms / 1000,
    )
    tables = WebhookTables(datastore)
    if owner:
        tables.create_table()
    webhooks = None
    if settings.pepper:  # the endpoints' secrets are sealed under a key derived from it
        webhooks = Endpoints(
            tables,
            SecretBox(settings.pepper),
            app.recorder.max_notification_id,
            clock,
            settings.webhook_allow_private,
        )
    return Service(
        settings,
        app,
        limiter,
        dialog,
        clock,
        views,
        plans,
        feed,
        monitor,
        seats,
        owner,
        webhooks=webhooks,
    )


def start_projections(service: Service, names: Iterable[str] = NAMES) -> None:
    """Run the views' workers in this process (`license-svc project`, `license-svc run`)."""
    workers = ProjectionWorkers(
        service.settings, service.datastore, names, create=service.schema_owner
    )
    workers.start()
    service.background.append(workers)


def start_sweeper(service: Service) -> None:
    """Run the expiry sweeper in this process (`license-svc expire`, `license-svc run`)."""
    every = service.settings.sweep_interval_seconds
    retention = timedelta(days=service.settings.attempt_retention_days)
    leases = LeaseSweeper(service.seats, service.settings.sweep_batch)
    for thread in (
        Periodic("sweeper", service.sweeper().sweep_and_log, every, log=log),
        # Beside it, on the same period: the failed-attempt audit's retention, and the seat
        # leases' expiries (their seats were free at expires_at: this records the history).
        Periodic("attempt-retention", lambda: purge(service.limiter, retention), every, log=log),
        Periodic("lease-sweeper", leases.sweep_and_log, every, log=log),
    ):
        thread.start()
        service.background.append(thread)


def webhook_policy(settings: Settings) -> Policy:
    return Policy(
        timeout=settings.webhook_timeout_seconds,
        per_endpoint=settings.webhook_per_endpoint,
        retry_base=settings.webhook_retry_base_seconds,
        retry_window=timedelta(hours=settings.webhook_retry_window_hours),
        allow_private=settings.webhook_allow_private,
    )


def start_webhooks(service: Service) -> None:
    """Route the store's log into deliveries and send them, in this process (`license-svc
    webhooks`, `license-svc run`, `serve` with LICENSE_SVC_RUN_WEBHOOKS)."""
    settings = service.settings
    tables = WebhookTables(service.datastore)
    worker = WebhookWorker(
        Router(tables, service.app, service.clock),
        Reminders(tables, service.clock),
        Sender(tables, SecretBox(settings.pepper), service.clock, webhook_policy(settings)),
        conninfo=settings.conninfo(),
        channel=service.app.store.channel_name,
        threads=settings.webhook_threads,
        poll=settings.webhook_poll_seconds,
        remind_interval=settings.webhook_remind_interval_seconds,
        retention=timedelta(days=settings.webhook_retention_days),
    )
    worker.start()
    service.background.append(worker)
