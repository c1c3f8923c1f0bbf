"""Runs the views: one library `ProjectionRunner` per view, supervised, in batches.

- Batches: the library's subscription already fetches events 500 at a time; the runner hands the
  projection every event it holds before it would block (at most MAX_BATCH), so a catch-up or a
  rebuild writes thousands of events per transaction and a live worker still commits each
  event as soon as it is seen.
- One worker per view at a time: a worker takes a Postgres advisory lock named after the view's
  live generation before running it; a second worker (another process, or a rebuild) stands by
  and takes over within `worker_poll_seconds` of the first one dying. The lock only avoids
  wasted work: exactly-once comes from the tracking row written with each batch, which refuses
  a position that was already recorded.
- Generation switches: a worker re-reads the live generation every poll and moves to the new
  one after a rebuild switched it.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterable
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.projection import ProjectionRunner
from psycopg.rows import dict_row

from license_svc.application import LicensingApp
from license_svc.config import Settings

from .base import View, generation_name
from .generations import Generations, advisory_lock
from .registry import NAMES, PROJECTIONS

log = logging.getLogger("license_svc.projections")

MAX_BATCH = 5_000
# The runner's own pools (the library opens them up front): the subscription keeps one
# connection LISTENing and pulls on another, the view writes on one.
RUNNER_ENV = {"CREATE_TABLE": "n", "POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "2"}


class BatchingRunner(ProjectionRunner[LicensingApp, View]):
    @staticmethod
    def _process_events_loop(  # type: ignore[override]
        subscription: Any, projection: Any, is_stopping: threading.Event, runner: Any
    ) -> None:
        try:
            items: list[Any] = []
            for item in subscription:
                items.append(item)
                if len(items) >= MAX_BATCH or not _more_buffered(subscription):
                    projection.process_batch(items)
                    items = []
        except BaseException as error:
            owner = runner()
            if owner is not None:
                owner._thread_error = error
            else:
                log.error("projection runner gone before its error was reported", exc_info=error)
        finally:
            is_stopping.set()


def _more_buffered(subscription: Any) -> bool:
    """Whether the library's subscription already holds further events. Reads private state of
    eventsourcing 9.5's ListenNotifySubscription; should it change, batches shrink to one event:
    slower, never wrong."""
    inner = getattr(subscription, "subscription", None)
    try:
        return bool(
            inner._notifications_index < len(inner._notifications)  # type: ignore[union-attr]
            or not inner._notifications_queue.empty()  # type: ignore[union-attr]
        )
    except AttributeError:
        return False


def start_runner(settings: Settings, name: str, generation: int) -> BatchingRunner:
    projection = PROJECTIONS[name].for_generation(generation)
    runner = BatchingRunner(
        application_class=LicensingApp,
        projection_class=projection,  # type: ignore[arg-type]
        view_class=projection.view_class,
        env={**settings.eventsourcing_env(), **RUNNER_ENV},
    )
    return runner.__enter__()


def close_runner(runner: BatchingRunner) -> None:
    """Stop it and close its view's pool too (the library closes only the application)."""
    try:
        runner.__exit__(None, None, None)
    finally:
        runner.view.datastore.close()


def worker_lock_key(name: str, generation: int) -> int:
    return zlib.crc32(f"license-svc/worker/{generation_name(name, generation)}".encode())


def connect(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(
        settings.database_url,
        autocommit=True,
        row_factory=dict_row,
        connect_timeout=int(max(1, settings.connect_timeout)),
    )


class ViewWorker(threading.Thread):
    """Keeps one view's live generation up to date until stopped; restarts after errors."""

    def __init__(self, settings: Settings, datastore: PostgresDatastore, name: str) -> None:
        super().__init__(name=f"view-{name}", daemon=True)
        self.settings = settings
        self.view_name = name
        self._datastore = datastore
        self._generations = Generations(datastore)
        self._stopping = threading.Event()
        self._runner: BatchingRunner | None = None
        self.running_generation: int | None = None

    def stop(self) -> None:
        self._stopping.set()
        runner = self._runner
        if runner is not None:
            runner.stop()  # wakes run_forever() at once

    def run(self) -> None:
        backoff = self.settings.worker_poll_seconds
        while not self._stopping.is_set():
            try:
                self._serve_live_generation()
                backoff = self.settings.worker_poll_seconds
            except Exception as error:
                log.warning("view %s: %s; restarting in %.1fs", self.view_name, error, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _live(self, conn: psycopg.Connection[Any]) -> int:
        return self._generations.live_on(conn, self.view_name)

    def _serve_live_generation(self) -> None:
        poll = self.settings.worker_poll_seconds
        with connect(self.settings) as conn:
            generation = self._live(conn)
            with advisory_lock(conn, worker_lock_key(self.view_name, generation)) as taken:
                if not taken:  # another worker runs it: stand by
                    self._stopping.wait(poll)
                    return
                PROJECTIONS[self.view_name].view_class.at(
                    self._datastore, generation
                ).create_table()
                runner = self._runner = start_runner(self.settings, self.view_name, generation)
                self.running_generation = generation
                log.info("view %s: running generation %d", self.view_name, generation)
                try:
                    while not self._stopping.is_set():
                        runner.run_forever(timeout=poll)  # re-raises the runner's error
                        if runner.is_interrupted.is_set() and not self._stopping.is_set():
                            raise RuntimeError("the runner stopped")
                        if self._live(conn) != generation:
                            log.info("view %s: generation %d replaced", self.view_name, generation)
                            return
                finally:
                    self.running_generation = self._runner = None
                    close_runner(runner)


class ProjectionWorkers:
    """The views' workers of one process: `license-svc project`, or inside `license-svc run`."""

    def __init__(
        self, settings: Settings, datastore: PostgresDatastore, names: Iterable[str] = NAMES
    ) -> None:
        Generations(datastore).create_table()
        self.workers = [ViewWorker(settings, datastore, name) for name in names]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        _stop_all(self.workers)
        for worker in self.workers:
            if worker.is_alive():
                worker.join(timeout)


def _stop_all(workers: list[ViewWorker]) -> None:
    for worker in workers:
        worker.stop()
