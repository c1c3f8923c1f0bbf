"""A rebuild's first pass: the store up to its head, folded one aggregate at a time.

A replay in store order inserts a key's row when the key is issued and updates it when the key
is activated, revoked or expired, which happens far later in the log, so in another batch: an
UPDATE per event, and PostgreSQL pays for an updated row (a new row version, its index entries)
several times what it pays for a copied one. In a store of activations and seat leases those
updates set a rebuild's pace.

The fold reads the store in the primary key's order instead (aggregate id, then version; an
index range scan, up to the head it started at), so all of an aggregate's events arrive
together. Each view's `Folder` turns them into the rows they leave, and copies each row once.
Everything is one transaction, with the view's tracking row set to the head at its end: a fold
that fails or is killed leaves nothing (the rebuild fails and its generation is abandoned). The
events appended meanwhile (past the head) are replayed in store order after it.

Memory: a chunk of CHUNK events read and decoded, one more being written, one being read (not
yet decoded), and the one aggregate a chunk may end inside of (an aggregate's events: a key has
at most four, a lease two, a plan one a month); the catalog's counts besides (as many as its
count table's rows).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from eventsourcing.utils import resolve_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from license_svc.adapters.application import EventStore
from license_svc.adapters.eventstore import quick_uuid
from projections.base import Aggregate, Batch, Folder, View

CHUNK = 5_000  # events read and decoded at a time
_DONE, _ABANDON = object(), object()
_WAIT = 0.05  # how often a full hand-off looks whether the writer has failed
# How long a thread may hold the GIL while another waits for it, during a fold (Python's is 5
# ms). The reader thread takes the GIL back after each of the ~70 socket reads of a chunk (32 kB
# each, psycopg's wait loop), and at 5 ms a turn it waited on the decoding far longer than
# PostgreSQL took: the whole store's reads took 25 s beside a thread that only computes, 0.8 s
# alone, 2.9 s at 0.5 ms. The reads then overlap the decoding (docs/capacity.md, "The fold").
SWITCH_INTERVAL = 0.0005
_switching = threading.Lock()
_folds = 0  # folds running in this process; the first sets the interval, the last restores it
_interval = sys.getswitchinterval()


def aggregates(
    app: EventStore,
    head: int,
    chunk: int = CHUNK,
    wanted: tuple[type, ...] = (object,),
    reads: Mapping[type, tuple[str, ...]] | None = None,
) -> Iterator[tuple[list[Aggregate], int]]:
    """Every aggregate's events at positions up to `head`, a chunk at a time, each aggregate
    whole in one chunk (one that a read ends inside of is carried to the next); with each
    chunk, the number of events read for it. Only events of the `wanted` classes are decoded
    and kept (a topic's class is resolved once); of a class in `reads`, only the fields named
    there (`StoreMapper.decode_fields`). The next chunk is read by a thread of its own while
    this one is decoded: PostgreSQL's part of a read in this order (a heap page per event) is
    as long as the decoding."""
    mapper = app.store_mapper
    decode, decode_fields = mapper.decode, mapper.decode_fields
    reads = reads or {}
    kept: dict[str, tuple[str, ...] | bool] = {}  # by topic: False, True (whole) or its fields
    current: Aggregate = []
    current_id: bytes = b""
    uuid = quick_uuid(bytes(16))
    with ThreadPoolExecutor(1, thread_name_prefix="fold-reader") as reader:
        reading = reader.submit(app.store.select_by_aggregate, None, head, chunk)
        while True:
            found = reading.result()
            more = len(found) == chunk
            if more:  # the next read starts after this one's last event
                _, last_id, last_version, _, _ = found[-1]
                after = (quick_uuid(last_id), last_version)
                reading = reader.submit(app.store.select_by_aggregate, after, head, chunk)
            whole: list[Aggregate] = []
            for position, originator_id, version, topic, state in found:
                if originator_id != current_id:
                    if current:
                        whole.append(current)
                    current, current_id, uuid = [], originator_id, quick_uuid(originator_id)
                keep = kept.get(topic)
                if keep is None:
                    keep = kept[topic] = _kept(resolve_topic(topic), wanted, reads)
                if keep is True:
                    current.append((position, decode(uuid, version, topic, state)))
                elif keep is not False:
                    current.append((position, decode_fields(uuid, version, topic, state, keep)))
            if not more:  # the last read: the aggregate it ends with is whole
                if current:
                    whole.append(current)
                yield whole, len(found)
                return
            yield whole, len(found)


def _kept(
    cls: type, wanted: tuple[type, ...], reads: Mapping[type, tuple[str, ...]]
) -> tuple[str, ...] | bool:
    if not issubclass(cls, wanted):
        return False
    return reads.get(cls, True)


def fold(
    app: EventStore,
    view: View,
    head: int,
    progress: Callable[[int], None] = lambda done: None,
    chunk: int = CHUNK,
) -> None:
    """`view` (an empty generation at position 0) up to `head`, in one transaction: chunks are
    read and decoded here while a writer thread copies the one before (at most one waits)."""
    if head <= 0:
        return
    handed: queue.Queue[object] = queue.Queue(maxsize=1)
    with _quick_switches(), ThreadPoolExecutor(1, thread_name_prefix="fold-writer") as pool:
        folder = view.folder()
        writing = pool.submit(_write, view, folder, head, handed)
        done = 0
        try:
            for whole, read in aggregates(app, head, chunk, folder.events, folder.reads):
                _hand(handed, whole, writing)
                done += read
                progress(done)
            _hand(handed, _DONE, writing)
        except BaseException:
            if not writing.done():
                _hand(handed, _ABANDON, writing, quiet=True)
            raise
        writing.result()


@contextmanager
def _quick_switches() -> Iterator[None]:
    """SWITCH_INTERVAL while any fold of this process runs; the interval before, after."""
    global _folds, _interval
    with _switching:
        if _folds == 0:
            _interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_interval, SWITCH_INTERVAL))
        _folds += 1
    try:
        yield
    finally:
        with _switching:
            _folds -= 1
            if _folds == 0:
                sys.setswitchinterval(_interval)


def _hand(
    handed: queue.Queue[object], item: object, writing: Future[None], quiet: bool = False
) -> None:
    """Put `item` for the writer, or raise the writer's error if it stopped (nothing if quiet)."""
    while True:
        try:
            handed.put(item, timeout=_WAIT)
            return
        except queue.Full:
            if writing.done():
                if quiet:
                    return
                writing.result()
                raise RuntimeError("the fold's writer stopped before the fold ended") from None


def _write(view: View, folder: Folder, head: int, handed: queue.Queue[object]) -> None:
    with view.datastore.transaction(commit=True) as curs:
        deferred = _defer_unique(curs, view, folder.copied)
        while (item := handed.get()) is not _DONE:
            if item is _ABANDON:
                raise RuntimeError("the fold was abandoned")  # rolls the transaction back
            folder.write(curs, item)  # type: ignore[arg-type]
        folder.finish(curs)
        for statement in deferred:
            curs.execute(statement)
        view._fence_tracking(curs, Batch(first=1, last=head))


def _defer_unique(curs: Cursor[DictRow], view: View, suffixes: Sequence[str]) -> list[Composed]:
    """Drop the primary keys and unique constraints of the tables the folder only copies into,
    and return the statements that add them back, by the same names and definitions, once the
    rows are in: an index built by one sort instead of a B-tree insertion per row at random
    (a third of the allowance's copying). A row the constraint refuses fails the fold."""
    restore: list[Composed] = []
    for suffix in suffixes:
        table = view.table(suffix)
        found = curs.execute(
            "SELECT conname, pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c"
            " WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'u') ORDER BY conname",
            (table.as_string(curs),),
        ).fetchall()
        if not found:
            continue
        names = [Identifier(row["conname"]) for row in found]
        curs.execute(
            SQL("ALTER TABLE {} {}").format(
                table, SQL(", ").join(SQL("DROP CONSTRAINT {}").format(n) for n in names)
            )
        )
        adds = [
            SQL("ADD CONSTRAINT {} {}").format(name, SQL(row["definition"]))
            for name, row in zip(names, found, strict=True)
        ]
        restore.append(SQL("ALTER TABLE {} {}").format(table, SQL(", ").join(adds)))
    return restore
