"""Runs the views: one library runner per worker over the views it holds, supervised, in batches.

- One runner, many views: the library's `BaseProjectionRunner` follows the store for a
  `ViewSet` (see `viewset.py`): one subscription, and one transaction per batch for all of the
  worker's views, each with its own tracking row.
- Batches: the subscription fetches events 500 at a time; the runner hands the projection every
  event it holds before it would block (at most MAX_BATCH), so a catch-up or a rebuild writes
  thousands of events per transaction. A live worker commits an event as soon as it is seen
  after a quiet spell, so a lone read-your-writes round never waits; under load it lets a batch
  gather until GATHER_SECONDS after its previous commit, so commits (each a turn at the global
  NOTIFY lock that writers' commits queue on) stay at most one per GATHER_SECONDS — and the
  subscription reads the log at most as often (`follow.py`).
- One worker per view at a time: a worker takes a Postgres advisory lock named after each view's
  live generation before running it; a second worker (another process, or a rebuild) stands by
  and takes over within `worker_poll_seconds` of the first one dying. The lock only avoids
  wasted work: exactly-once comes from the tracking row written with each batch, fenced on the
  position the batch was read from (`View.write`): a runner whose lock session died while it
  still wrote cannot commit a batch overlapping its successor's.
- Generation switches: a worker re-reads the live generations every poll and restarts its
  runner on the new one after a rebuild switched it (or to add a view it could now take).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from eventsourcing.persistence import InfrastructureFactory, TrackingRecorder
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.projection import BaseProjectionRunner
from psycopg.rows import dict_row

from license_svc.adapters import pools as dbpool
from license_svc.adapters.application import EventStore
from license_svc.adapters.supervise import supervise
from license_svc.adapters.threads import Threads
from license_svc.config import Settings
from projections.base import generation_name
from projections.generations import Generations
from projections.registry import NAMES, view_class

from .follow import PULL_SECONDS
from .follow import TOPIC as FOLLOWING_TOPIC
from .viewset import ViewSet, ViewSetProjection

log = logging.getLogger("license_svc.projections")

MAX_BATCH = 5_000
GATHER_SECONDS = PULL_SECONDS
# The runner's own pools (the library opens them up front): the subscription keeps one
# connection LISTENing and pulls on another, the views write on one. Its application follows
# the store with the paced subscription of `follow.py`.
RUNNER_ENV = {
    "CREATE_TABLE": "n",
    "POSTGRES_POOL_SIZE": "1",
    "POSTGRES_MAX_OVERFLOW": "2",
    "APPLICATION_RECORDER_TOPIC": FOLLOWING_TOPIC,
}


class BatchingRunner(BaseProjectionRunner[EventStore]):
    """The library's runner, given a view set and handing it whole batches."""

    def __init__(self, settings: Settings, generations: Mapping[str, int]) -> None:
        env = {**settings.eventsourcing_env(), **RUNNER_ENV}
        factory: Any = InfrastructureFactory[TrackingRecorder].construct(
            env=self._construct_env(name=ViewSetProjection.name, env=env)
        )
        self.datastore: PostgresDatastore = factory.datastore
        dbpool.harden(self.datastore, env)
        try:
            self.views = ViewSet(
                [view_class(name).at(self.datastore, g) for name, g in generations.items()]
            )
            super().__init__(
                projection=ViewSetProjection(self.views),
                application_class=EventStore,
                tracking_recorder=self.views,
                topics=(),
                env=env,
            )
        except BaseException:
            self.datastore.close()
            raise

    @staticmethod
    def _process_events_loop(  # type: ignore[override]
        subscription: Any, projection: Any, is_stopping: threading.Event, runner: Any
    ) -> None:
        try:
            items: list[Any] = []
            committed = 0.0
            held = 0  # events the subscription has read and not handed out yet
            for item in subscription:
                items.append(item)
                held = held - 1 if held > 0 else _held(subscription)
                if len(items) < MAX_BATCH and (
                    held > 0 or _more_coming(subscription, until=committed + GATHER_SECONDS)
                ):
                    continue
                projection.process_batch(items)
                items = []
                committed = time.monotonic()
        except BaseException as error:
            owner = runner()
            if owner is not None:
                owner._thread_error = error
            else:
                log.error("projection runner gone before its error was reported", exc_info=error)
        finally:
            is_stopping.set()


def _held(subscription: Any) -> int:
    """How many events the library's subscription holds read and not handed out: the runner
    counts them down instead of asking `_more_coming` after every event of a replay. Private
    state of eventsourcing 9.5, as in `_more_coming`; should it change, 0 (ask every time)."""
    inner = getattr(subscription, "subscription", None)
    try:
        return len(inner._notifications) - inner._notifications_index  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        return 0


def _more_coming(subscription: Any, until: float) -> bool:
    """Whether the library's subscription holds further events, or receives some before `until`
    (monotonic). Reads private state of eventsourcing 9.5's ListenNotifySubscription; should it
    change, batches shrink to one event: slower, never wrong."""
    inner = getattr(subscription, "subscription", None)
    try:
        if inner._notifications_index < len(inner._notifications):  # type: ignore[union-attr]
            return True
        queue = inner._notifications_queue  # type: ignore[union-attr]
        with queue.not_empty:  # the queue's own condition, notified by each put()
            return bool(queue.not_empty.wait_for(queue._qsize, until - time.monotonic()))
    except AttributeError:
        return False


def start_views(settings: Settings, generations: Mapping[str, int]) -> BatchingRunner:
    """A running runner for the given views, each at the given generation."""
    return BatchingRunner(settings, generations).__enter__()


def start_runner(settings: Settings, name: str, generation: int) -> BatchingRunner:
    """A running runner for one generation of one view (a rebuild's, or a test's)."""
    return start_views(settings, {name: generation})


def close_runner(runner: BatchingRunner) -> None:
    """Stop it and close its views' pool too (the library closes only the application)."""
    try:
        runner.__exit__(None, None, None)
    finally:
        runner.datastore.close()


def worker_lock_key(name: str, generation: int) -> int:
    return zlib.crc32(f"license-svc/worker/{generation_name(name, generation)}".encode())


def connect(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.conninfo(), autocommit=True, row_factory=dict_row)


class WorkerLocks:
    """The session-level worker locks one connection holds, by (view, generation)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self.held: set[tuple[str, int]] = set()

    def take(self, wanted: Mapping[str, int]) -> dict[str, int]:
        """Keep the locks of `wanted` that can be had, release the others; what is held."""
        for name, generation in sorted(self.held - set(wanted.items())):
            self._conn.execute(
                "SELECT pg_advisory_unlock(%s)", (worker_lock_key(name, generation),)
            )
            self.held.discard((name, generation))
        for name, generation in wanted.items():
            if (name, generation) not in self.held and self._try(name, generation):
                self.held.add((name, generation))
        return {name: g for name, g in wanted.items() if (name, g) in self.held}

    def _try(self, name: str, generation: int) -> bool:
        row = self._conn.execute(
            "SELECT pg_try_advisory_lock(%s) AS taken", (worker_lock_key(name, generation),)
        ).fetchone()
        return bool(row and row["taken"])


class ViewWorker(threading.Thread):
    """Keeps the live generation of each of its views up to date until stopped; restarts
    after errors. Closing its connection releases its locks."""

    def __init__(
        self,
        settings: Settings,
        datastore: PostgresDatastore,
        names: Iterable[str],
        create: bool = True,
    ):
        self.view_names = list(names)
        self._create = create  # make a generation's tables (False: no DDL, see ProjectionWorkers)
        super().__init__(name=f"views-{'+'.join(self.view_names)}", daemon=True)
        self.settings = settings
        self._datastore = datastore
        self._generations = Generations(datastore)
        self._stopping = threading.Event()
        self._runner: BatchingRunner | None = None
        self.running: dict[str, int] = {}  # the views it runs now, by live generation

    def stop(self) -> None:
        self._stopping.set()
        runner = self._runner
        if runner is not None:
            runner.stop()  # wakes run_forever() at once

    def run(self) -> None:
        # Capped low: after an outage the worker is back within a second or two.
        first = self.settings.worker_poll_seconds
        what = f"views {self.name}"
        supervise(self._serve_live_generations, self._stopping, what=what, log=log, first=first)

    def _live(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        return {name: self._generations.live_on(conn, name) for name in self.view_names}

    def _serve_live_generations(self) -> None:
        poll = self.settings.worker_poll_seconds
        with connect(self.settings) as conn:
            locks = WorkerLocks(conn)
            while not self._stopping.is_set():
                live = self._live(conn)
                held = locks.take(live)
                if not held:  # other workers run them all: stand by
                    self._stopping.wait(poll)
                    continue
                self._run(conn, locks, live, held)

    def _run(
        self,
        conn: psycopg.Connection[Any],
        locks: WorkerLocks,
        live: dict[str, int],
        held: dict[str, int],
    ) -> None:
        """Run `held` until a generation switches or a view more can be taken."""
        poll = self.settings.worker_poll_seconds
        for name, generation in held.items():
            if self._create:
                view_class(name).at(self._datastore, generation).create_table()
        runner = self._runner = start_views(self.settings, held)
        self.running = dict(held)
        log.info("views: running %s", ", ".join(generation_name(*item) for item in held.items()))
        try:
            while not self._stopping.is_set():
                runner.run_forever(timeout=poll)  # re-raises the runner's error
                if runner.is_interrupted.is_set() and not self._stopping.is_set():
                    raise RuntimeError("the runner stopped")
                now = self._live(conn)
                if now != live:
                    log.info("views: a generation was switched; restarting the runner")
                    return
                if len(locks.take(now)) > len(held):
                    log.info("views: taking over a view from a worker that stopped")
                    return
        finally:
            self.running, self._runner = {}, None
            close_runner(runner)


class ProjectionWorkers(Threads):
    """The views' worker of one process: `license-svc project`, or inside `license-svc run`."""

    def __init__(
        self,
        settings: Settings,
        datastore: PostgresDatastore,
        names: Iterable[str] = NAMES,
        create: bool = True,
    ) -> None:
        """`create`: make the views' tables as they are needed; False for a role that may run
        no DDL (`license-svc migrate` made the live generations' tables)."""
        if create:
            Generations(datastore).create_table()
        self.workers = [ViewWorker(settings, datastore, names, create)]
        super().__init__(self.workers)  # alive while every worker runs (standing by counts)

    def stop(self, timeout: float = 30.0) -> None:
        for worker in self.workers:
            worker.stop()
        self.join(timeout)
