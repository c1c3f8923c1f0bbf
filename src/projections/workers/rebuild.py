"""`license-svc projections rebuild NAME`: replay the store from position 0 into a new generation
of the view's tables, with a progress bar, then switch readers over once it has caught up.

The replay is first a fold (`fold.py`: the store up to its head in aggregate order, each
aggregate's rows copied once), then the events appended meanwhile in store order (`_replay`),
then a runner until the switch.

Readers keep answering from the live generation the whole time. The new generation is filled
holding that generation's worker lock (its tail by the same runner and batches a worker uses),
so no worker runs it concurrently; after the switch the workers move to it. The generation it
replaced is dropped once nothing uses it (`prune.py`; `keep_old` keeps it, e.g. to compare the
two), and so is any other generation but the live one (an abandoned rebuild's) when a rebuild
starts.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore

from license_svc.adapters.application import EventStore
from license_svc.config import Settings
from projections.base import APP_NAME, View
from projections.generations import Generations, advisory_lock
from projections.registry import view_class

from .fold import fold
from .prune import Pruned, prune
from .runner import close_runner, connect, start_runner, worker_lock_key
from .viewset import ViewSet

# How often a rebuild asks how far its replay is (one indexed SELECT): at 0.25 s, a replay of a
# second was reported (and switched) up to a quarter of a second late.
TICK_SECONDS = 0.02
INDEX_BUILDS = 2  # a rebuild's read indexes built at once, each on a connection of its own
REPLAY_CHUNK = 5_000  # events read, decoded and written in one transaction by a replay


class RebuildBusy(Exception):
    """Another rebuild of this view is running."""


@dataclass(frozen=True)
class Rebuilt:
    name: str
    generation: int
    events: int  # the position replayed up to before the switch
    seconds: float  # replay time, from the runner's start until it caught up

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """A plain-text bar on a stream: redrawn in place on a terminal, a line per second if not."""

    def __init__(self, label: str, out: TextIO) -> None:
        self.label = label
        self.out = out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self._last_line = 0.0

    def show(self, done: int, total: int, final: bool = False) -> None:
        now = time.monotonic()
        if not (self.tty or final or now - self._last_line >= 1.0):
            return
        self._last_line = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        fraction = min(1.0, done / total) if total else 1.0
        eta = (total - done) / rate if rate > 0 and total > done else 0.0
        bar = "#" * int(fraction * 30)
        line = (
            f"{self.label} [{bar:<30}] {fraction:4.0%} {done:,}/{total:,} events"
            f"  {rate:,.0f} ev/s  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        )
        self.out.write(("\r" + line + ("\n" if final else "")) if self.tty else line + "\n")
        self.out.flush()


def rebuild(
    settings: Settings,
    datastore: PostgresDatastore,
    app: EventStore,
    name: str,
    out: TextIO = sys.stderr,
    keep_old: bool = False,
) -> Rebuilt:
    generations = Generations(datastore)
    generations.create_table()
    cls = view_class(name)
    with rebuilding(settings, name) as (conn, mine):
        if not mine:
            raise RebuildBusy(f"a rebuild of {name} is already running")
        live, new_generation = generations.begin_rebuild(name)
        try:
            old = cls.at(datastore, live)
            old.create_table()
            _report(out, prune(conn, settings, datastore, name))
            new = cls.at(datastore, new_generation)
            new.create_table(read_indexes=False)  # built once the replay has caught up
            with advisory_lock(conn, worker_lock_key(name, new_generation)) as held:
                assert held, "nothing else runs a generation that is not live yet"
                rebuilt = _replay_and_switch(settings, generations, app, old, new, out)
        except BaseException:
            generations.abandon_rebuild(name)
            raise
        if not keep_old:
            # The old generation's worker moves on within its poll interval; reads re-point
            # at the switch's notice. Wait for both as long as a switch may wait.
            _report(out, prune(conn, settings, datastore, name, settings.rebuild_switch_seconds))
    return rebuilt


def _report(out: TextIO, pruned: Pruned) -> None:
    if pruned.dropped or pruned.kept:
        out.write(pruned.summary() + "\n")


def _replay_and_switch(
    settings: Settings,
    generations: Generations,
    app: EventStore,
    old: View,
    new: View,
    out: TextIO,
) -> Rebuilt:
    name = type(new).name
    progress = Progress(f"rebuild {name} g{new.generation}", out)
    head = app.recorder.max_notification_id() or 0
    fold(app, new, head, lambda done: progress.show(done, head))  # one row per aggregate
    _replay(app, new, app.recorder.max_notification_id() or 0, progress)  # appended meanwhile
    runner = start_runner(settings, name, new.generation)  # the events appended meanwhile
    try:
        while True:
            head = app.recorder.max_notification_id() or 0
            done = new.position()
            if done >= head:
                break
            progress.show(done, head)
            runner.run_forever(timeout=TICK_SECONDS)  # re-raises the runner's error
            if runner.is_interrupted.is_set():
                raise RuntimeError("the rebuild's runner stopped")
        new.create_read_indexes(parallel=INDEX_BUILDS)
        seconds = time.monotonic() - progress.started
        progress.show(done, head, final=True)
        # Traffic goes on: the switch waits, with the live position held still, for the last few.
        while not generations.switch(name, old, new, settings.rebuild_switch_seconds):
            runner.run_forever(timeout=TICK_SECONDS)
    finally:
        close_runner(runner)
    rebuilt = Rebuilt(name, new.generation, done, seconds)
    out.write(
        f"rebuilt {name}: {rebuilt.events:,} events in {seconds:.1f}s"
        f" ({rebuilt.events_per_second:,.0f} events/s); generation {new.generation} is live\n"
    )
    return rebuilt


def _replay(app: EventStore, view: View, head: int, progress: Progress) -> None:
    """The view from its position up to `head`: read REPLAY_CHUNK events, decode them, and
    hand them as one batch to a writer thread (the views' own transaction, fenced on the
    tracking row as a worker's) while the next chunk is read and decoded. At most one batch is
    being written while the next is decoded: the write waits for PostgreSQL most of its time,
    the decoding holds the GIL.

    A runner (its reader thread, its queue, the runner's own thread) was slower: under one GIL
    the hand-offs between three threads cost more than they overlapped. A replay of 100,000
    events in process, back to back: `summary` 0.96 s in one thread, 0.87 s with the writer;
    `catalog` (whose COPY waits longest) 1.08 s and 0.96 s. Memory: two chunks of decoded
    events at most, the one being written and the next."""
    views = ViewSet([view])
    to_event = app.mapper.to_domain_event
    done = view.position()
    with ThreadPoolExecutor(1, thread_name_prefix="replay-writer") as writer:
        written: Future[None] | None = None
        while done < head:
            # No stop at `head`: with one, PostgreSQL's estimate of the range (from statistics
            # taken while the store was smaller) chose a bitmap scan and a sort of every event
            # after `done`, 30 ms a chunk, where the index gives the next 5,000 in 1 ms.
            # Events past `head` are as good to apply as any.
            found = app.recorder.select_notifications(
                start=done, limit=REPLAY_CHUNK, inclusive_of_start=False
            )
            if not found:
                break
            batch = [(to_event(n), Tracking(APP_NAME, n.id)) for n in found]
            if written is not None:
                written.result()  # the batch before it committed (or its error is raised)
            written = writer.submit(views.record, batch)
            done = found[-1].id
            progress.show(done, head)
        if written is not None:
            written.result()


@contextmanager
def rebuilding(settings: Settings, name: str) -> Iterator[tuple[psycopg.Connection[Any], bool]]:
    """A connection of its own and whether it took the rebuild lock of `name` (held until the
    block ends): one rebuild or prune of a view at a time."""
    with connect(settings) as conn, advisory_lock(conn, _rebuild_lock_key(name)) as mine:
        yield conn, mine


def _rebuild_lock_key(name: str) -> int:
    return zlib.crc32(f"license-svc/rebuild/{name}".encode())
