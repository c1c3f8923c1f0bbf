"""Group commit: the appends that wait in one process are written in one transaction.

The library's recorder serializes every append behind `LOCK TABLE … IN EXCLUSIVE MODE` (and
the NOTIFY's cluster-wide commit lock), so a store's appends run one transaction at a time,
each paying its own lock, NOTIFY and commit flush. Here the first thread that appends while no
write is under way becomes the writer: it takes every append that is queued (at most
`MAX_GROUP` of them, its own first) and writes them in one transaction — one table lock, one
NOTIFY, one multi-row INSERT, one commit. Appends that arrive meanwhile queue; when the writer
is done it hands the writer's role to the oldest of them, which writes the next group. No
timer: an idle store writes an append at once, alone.

Each append keeps its own outcome. The INSERT leaves out every append of which any event's
(originator_id, originator_version) is already stored — checked inside the statement, under
the table lock, so nothing can be stored in between — and that append alone gets the
library's IntegrityError, exactly as if it had been written alone and lost the race; its
callers reload and decide again. Two appends of one group that claim the same version: the
earlier wins, the later gets IntegrityError before anything is sent. (If the earlier then
loses to a stored event on another of its versions, the later one lost for nothing and simply
decides again: a spurious conflict, never a lost or doubled event.) Each append gets the
notification ids of its own events. An error of the whole transaction (a lost connection, a
lock timeout) fails every append of the group, as it would have failed each alone.

Bounds: the queue holds at most one append per thread that appends (each waits for its own
outcome) and at most `MAX_WAITING` coroutines' commands (`submit_async` refuses more); a
group at most `MAX_GROUP` appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar, cast

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

MAX_GROUP = 64  # appends written in one transaction
R = TypeVar("R")  # a job's answer
# Coroutines waiting in one queue (`submit_async`): they hold no thread, so nothing else bounds
# them; past this a call is refused at once (the service is busy: retry), queueing nothing.
MAX_WAITING = 4_096


class QueueFull(Exception):
    """`MAX_WAITING` commands already wait for a group: this one was not queued."""


class Job(Generic[R]):
    """One command waiting for a group's writer: the writer settles it (its `answer` or its
    `error`); `lead` says the writer's role was handed to it. A thread waits on `done`; a
    coroutine (`Batcher.submit_async`) on a future of its loop, resolved from the writer's
    thread."""

    def __init__(self) -> None:
        self.answer: R | None = None
        self.error: BaseException | None = None
        self.lead = False
        # Its waiter's wake-up, made before the job is queued: a thread's event, or a
        # coroutine's future.
        self.done: threading.Event | None = None
        self.woken: asyncio.Future[None] | None = None

    def settled(self) -> bool:
        return self.answer is not None or self.error is not None

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer


J = TypeVar("J", bound=Job[Any])


class Batcher(Generic[J]):
    """The group-commit queue for any kind of command: the first thread to submit while no
    group is being written writes every queued job (at most `max_group`, its own first) with
    `write`, which settles each; jobs that arrive meanwhile queue, and the oldest of them writes
    the next group. No timer. A `write` that raises settles every job it left unsettled with
    (a copy of) its error."""

    def __init__(
        self,
        write: Callable[[list[J]], None],
        max_group: int = MAX_GROUP,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self._write = write
        self._max_group = max(1, max_group)
        self._max_waiting = max(1, max_waiting)
        self._lock = threading.Lock()
        self._queue: deque[J] = deque()
        self._writing = False
        # Totals since start, for the bench's rows (mean group size, time per group).
        self.groups = 0
        self.appends = 0  # jobs written
        self.write_seconds = 0.0

    def queued(self) -> int:
        """Jobs waiting for a writer (not those being written)."""
        with self._lock:
            return len(self._queue)

    def submit(self, mine: J) -> J:
        """Queue `mine` and return it once a group's writer settled it."""
        mine.done = done = threading.Event()
        with self._lock:
            self._queue.append(mine)
            lead = not self._writing
            self._writing = True
        if not lead:
            try:
                done.wait()
            except BaseException:  # interrupted (a KeyboardInterrupt in the main thread)
                self._abandon(mine)
                raise
            if not mine.lead:
                return mine
        self._write_group()
        return mine

    async def submit_async(self, mine: J, writer: Executor) -> J:
        """`submit` for a coroutine: it waits on the event loop, holding no thread, and when
        the writer's role comes to it, it writes its group on `writer`'s thread. A cancelled
        caller leaves the queue (its job unwritten) or, if its group is being written, leaves
        the group to finish without it."""
        loop = asyncio.get_running_loop()
        mine.woken = loop.create_future()
        with self._lock:
            if len(self._queue) >= self._max_waiting:
                raise QueueFull(f"{len(self._queue):,} commands wait for a group already")
            self._queue.append(mine)
            lead = not self._writing
            self._writing = True
        if not lead:
            try:
                await mine.woken
            except BaseException:  # cancelled: the client went away or its deadline passed
                self._abandon(mine)
                raise
            if not mine.lead:
                return mine
        await loop.run_in_executor(writer, self._write_group)
        return mine

    def _abandon(self, mine: J) -> None:
        """Take back a job that no writer has taken yet; if the writer's role had been handed
        to it, hand the role on, so the jobs queued behind it are still written."""
        with self._lock:
            if mine in self._queue:
                self._queue.remove(mine)
                if mine.lead:
                    self._hand_over()

    def _hand_over(self) -> None:
        """(Under the lock.) Give the writer's role to the oldest queued job, or end it."""
        if self._queue:
            successor = self._queue[0]
            successor.lead = True
            _wake([successor])
        else:
            self._writing = False

    def _write_group(self) -> None:
        """Write the queue's head (the caller's own job first), then hand over."""
        with self._lock:
            group = [self._queue.popleft() for _ in range(min(self._max_group, len(self._queue)))]
        began = time.perf_counter()
        try:
            self._write(group)
        except BaseException as exc:
            for job in group:
                if not job.settled():
                    job.error = _own(exc)
        finally:
            with self._lock:
                self.groups += 1
                self.appends += len(group)
                self.write_seconds += time.perf_counter() - began
                self._hand_over()
            _wake(group[1:])


def _wake(jobs: Sequence[Job]) -> None:
    """Wake each job's waiter: a thread's event, or a coroutine's future, resolved on its loop
    (one call per loop for all of its jobs, not one per job)."""
    loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for job in jobs:
        if job.done is not None:
            job.done.set()
        elif job.woken is not None:
            loops.setdefault(job.woken.get_loop(), []).append(job.woken)
    for loop, futures in loops.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # (a cancelled waiter's is done)
            future.set_result(None)


class Append(Job[Sequence[int]]):
    def __init__(self, events: Sequence[StoredEvent]) -> None:
        super().__init__()
        self.events = events

    @property
    def ids(self) -> Sequence[int] | None:
        """The events' notification ids: the append's answer."""
        return self.answer

    @ids.setter
    def ids(self, value: Sequence[int]) -> None:
        self.answer = value


Writer = Callable[[list[Append]], None]  # sets each append's ids or error, or raises


class GroupCommit(Batcher[Append]):
    """Appends of stored events, grouped (see the module's text)."""

    def __init__(
        self, write: Writer, max_group: int = MAX_GROUP, max_waiting: int = MAX_WAITING
    ) -> None:
        super().__init__(
            lambda group: write([a for a in claimed_alone(group) if a.error is None]),
            max_group,
            max_waiting,
        )

    def append(self, events: Sequence[StoredEvent]) -> Sequence[int]:
        return self.submit(Append(events)).outcome()


def _own(error: BaseException) -> BaseException:
    """A copy of a group's error for one of its appends (each thread raises its own instance:
    one instance raised in several threads at once would mix their tracebacks), caused by the
    original; the original itself if it cannot be copied."""
    try:
        mine = copy.copy(error)
    except Exception:
        return error
    mine.__cause__ = error
    return mine


class RoundTrips:
    """Totals of the append transactions' round trips — from BEGIN sent to COMMIT answered, the
    table lock's wait and hold and the WAL flush inside — for the bench's append rows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.seconds = 0.0

    def add(self, seconds: float) -> None:
        with self._lock:
            self.count += 1
            self.seconds += seconds


def claimed_alone(group: list[Append]) -> list[Append]:
    """Fail (IntegrityError) each append that claims a version an earlier one of the group
    claims, or one version twice; return the group."""
    claimed: set[tuple[object, int]] = set()
    for append in group:
        versions = {(e.originator_id, e.originator_version) for e in append.events}
        if len(versions) < len(append.events) or not claimed.isdisjoint(versions):
            append.error = IntegrityError("an earlier append of the same group took the version")
        else:
            claimed |= versions
    return group


def group_insert(
    schema: Identifier, table: Identifier, datastore: PostgresDatastore, channel: str
) -> Composed:
    """A group's INSERT: leaves out each append of which a version is stored already (under
    the table lock, so the check and the insert see the same store), and returns every row's
    id with its key, so that each append gets its own ids or its own conflict. It NOTIFYs the
    store's channel only when a row went in: a group that every conflict emptied wakes nobody
    (the uncorrelated subquery runs once, and only if the outer SELECT has a row)."""
    return SQL(
        "WITH new AS (SELECT * FROM unnest(%s::int4[], %s::{id_type}[], %s::int8[],"
        " %s::text[], %s::bytea[]) WITH ORDINALITY"
        " AS n(appended, originator_id, originator_version, topic, state, ord)),"
        " taken AS (SELECT n.appended FROM new n JOIN {schema}.{table} t"
        " ON t.originator_id = n.originator_id AND t.originator_version = n.originator_version),"
        " ins AS (INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
        " SELECT originator_id, originator_version, topic, state FROM new"
        " WHERE appended NOT IN (SELECT appended FROM taken) ORDER BY ord"
        " RETURNING notification_id, originator_id, originator_version)"
        " SELECT notification_id, originator_id, originator_version,"
        " (SELECT pg_notify({channel}, '') FROM (SELECT 1 FROM ins LIMIT 1) one) AS notified"
        " FROM ins ORDER BY notification_id"
    ).format(
        schema=schema,
        table=table,
        id_type=SQL(datastore.originator_id_type),
        channel=Literal(channel),
    )


def group_parameters(group: list[Append]) -> tuple[list[Any], ...]:
    """`group_insert`'s arrays: each event's append (its index in the group) and columns."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [])
    appended, ids, versions, topics, states = columns
    for i, append in enumerate(group):
        for e in append.events:
            appended.append(i)
            ids.append(e.originator_id)
            versions.append(e.originator_version)
            topics.append(e.topic)
            states.append(e.state)
    return columns


def settle(group: list[Append], rows: list[DictRow]) -> None:
    """Give each append its events' ids, or IntegrityError where the INSERT left it out."""
    stored = {
        (str(r["originator_id"]), r["originator_version"]): r["notification_id"] for r in rows
    }
    for append in group:
        found = [stored.get((str(e.originator_id), e.originator_version)) for e in append.events]
        if None in found:
            append.error = IntegrityError("a version of this append is stored already")
        else:
            append.ids = cast(list[int], found)
