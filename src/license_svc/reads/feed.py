"""A stream's walk along the log, as an asyncio iterator: history in batches, then live.

    feed = LogFeed(follower, reader, executor)          # one per server process
    async for step in feed.walk(after=0, follow=True):  # one per stream
        step.events     # consecutive store events after the previous step (maybe none)
        step.upto       # the position read up to (>= the last event's)
        step.caught_up  # True once, on the step that ends the historical part

History is read from the store in batches of `batch` on the reader's own threads (`executor`),
never on the event loop and never on the unary calls' threads. Once caught up, the walk waits
for the follower's wake-up (the store's LISTEN/NOTIFY, no polling) and reads what was appended
from the follower's in-memory window; a walk that fell behind the window reads the store
again. While nothing happens it yields an empty step every `tick` seconds, so a stream can send
checkpoints and notice a client that went away. A live walk whose follower has heard nothing
from the database for `silence` seconds ends with `LogSilent` (UNAVAILABLE: the client resumes
from its last position, on this replica or another) instead of waiting in silence; the
follower and the readers are never pinned longer than their watchdog's bound.

The walk holds one batch at a time: a consumer that stops reading stops the walk (it awaits
the consumer), so memory per stream is bounded whatever is appended meanwhile.

History is shared: walks that reach the same position read one batch, once. A full batch
below the head never changes (positions are assigned and committed under the events table's
lock), so the feed keeps the last `shared` full batches it read (least recently used out) and
a walk that asks for a batch another walk is reading waits for that read instead of making
its own. Each shared batch carries a `memo` where the streams' filters keep what they derived
from it once for all of them (the batch's key facts; which events are whose). Two hundred
auditors replaying the store from position 0 thus cost the database one pass, not two hundred.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eventsourcing.persistence import Notification

from license_svc.adapters.watchdog import Watchdog

from .storelog import LogFollower, LogReader, LogSilent, StoreNames

T = TypeVar("T")
SHARED_BATCHES = 32  # full history batches a feed keeps for its walks (32 × 500 events)


class Abandoned(Exception):
    """The walk computing a shared result went away first: compute it yourself."""


@dataclass(eq=False)
class Memo:
    """What the streams derive from one shared batch, computed once for all of them."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _results: dict[Any, Future[Any]] = field(default_factory=dict)

    def claim(self, key: Any) -> tuple[Future[Any], bool]:
        """The future of `key`'s result, and whether the caller must compute it."""
        with self._lock:
            found = self._results.get(key)
            if found is not None:
                return found, False
            future: Future[Any] = Future()
            self._results[key] = future
            return future, True

    def abandon(self, key: Any, future: Future[Any]) -> None:
        """The computing walk failed or left: the next one to ask computes it."""
        with self._lock:
            if self._results.get(key) is future:
                del self._results[key]
        future.set_exception(Abandoned())

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        """A result computed without waiting (on the caller's thread, under the lock)."""
        with self._lock:
            found = self._results.get(key)
            if found is None:
                self._results[key] = found = Future()
                found.set_result(compute())
            return found.result()  # type: ignore[no-any-return]


async def shared(future: Future[T]) -> T:
    """Await a result other tasks may await too: one wrapper per loop (the thread that
    completes it wakes the loop once, not once per waiter), shielded (a waiter that leaves
    does not cancel it for the others)."""
    loop = asyncio.get_running_loop()
    wrapped: asyncio.Future[T] | None = getattr(future, "_on_loop", None)
    if wrapped is None or wrapped.get_loop() is not loop:
        wrapped = asyncio.wrap_future(future, loop=loop)
        future._on_loop = wrapped  # type: ignore[attr-defined]
    return await asyncio.shield(wrapped)


@dataclass(frozen=True)
class Step:
    events: list[Notification]
    upto: int
    caught_up: bool = False
    memo: Memo | None = None  # a shared history batch's (None: this walk's own events)


@dataclass(frozen=True, eq=False)
class Batch:
    events: list[Notification]
    memo: Memo


class SharedBatches:
    """The feed's full history batches: the last `bound` read, and those being read."""

    def __init__(self, bound: int = SHARED_BATCHES) -> None:
        self.bound = max(0, bound)
        self._done: OrderedDict[tuple[int, int], Batch] = OrderedDict()
        self._reading: dict[tuple[int, int], Future[Batch]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._done)

    def read(
        self, executor: Executor, read: Callable[[int, int], list[Notification]], at: int, n: int
    ) -> Batch | Future[Batch]:
        """The batch of `n` events after `at`: kept (returned as it is), or the future of the
        read already under way, or of one started now on `executor`."""
        key = (at, n)
        with self._lock:
            done = self._done.get(key)
            if done is not None:
                self._done.move_to_end(key)
                return done
            reading = self._reading.get(key)
            if reading is not None:
                return reading
            self._reading[key] = future = executor.submit(lambda: Batch(read(at, n), Memo()))
        future.add_done_callback(lambda f: self._finished(key, f))
        return future

    def _finished(self, key: tuple[int, int], future: Future[Batch]) -> None:
        with self._lock:
            if self._reading.get(key) is future:
                del self._reading[key]
            if future.cancelled() or future.exception() is not None or not self.bound:
                return
            batch = future.result()
            if len(batch.events) < key[1]:
                return  # the log's end: later reads of it may find more
            self._done[key] = batch
            while len(self._done) > self.bound:
                self._done.popitem(last=False)


@dataclass(eq=False)
class LogFeed:
    follower: LogFollower
    reader: LogReader
    executor: Executor
    batch: int = 500
    tick: float = 1.0
    silence: float = float("inf")
    shared: SharedBatches = field(default_factory=SharedBatches)

    @classmethod
    def build(
        cls,
        names: StoreNames,
        threads: int = 2,
        window: int = 10_000,
        timeout: float = 5.0,
        round_trip: float = float("inf"),
        silence: float = float("inf"),
    ) -> LogFeed:
        """The process's feed: a reader with `threads` connections and as many threads, and
        the one follower of the log. A round trip of either ends after `round_trip` seconds;
        live walks end once the follower heard nothing for `silence` seconds. Nothing
        connects until `start()`."""
        watchdog = Watchdog(round_trip, "stream-reads-watchdog")
        reader = LogReader(names, connections=threads, timeout=timeout, watchdog=watchdog)
        executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stream-read")
        return cls(LogFollower(reader, window=window), reader, executor, silence=silence)

    def start(self) -> None:
        self.follower.start()

    def close(self) -> None:
        self.follower.stop()
        if isinstance(self.executor, ThreadPoolExecutor):
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.reader.close()

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking store read on the stream readers' threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def head(self) -> int:
        return await self.call(self.reader.head)

    async def walk(self, after: int, follow: bool) -> AsyncIterator[Step]:
        position = after
        target = await self.head()  # the historical part: everything committed by now
        while position < target:
            batch = self.shared.read(self.executor, self.reader.after, position, self.batch)
            if not isinstance(batch, Batch):
                batch = await shared(batch)
            events = batch.events
            if events and events[-1].id > target:
                events = [e for e in events if e.id <= target]
            if not events:
                break  # nothing more below the target (ids the store skipped)
            position = events[-1].id
            yield Step(events, position, memo=batch.memo if events is batch.events else None)
        position = max(position, target)
        yield Step([], position, caught_up=True)
        if not follow:
            return
        async for step in self._live(position):
            yield step

    async def _live(self, position: int) -> AsyncIterator[Step]:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake(_head: int) -> None:
            loop.call_soon_threadsafe(woken.set)

        unsubscribe = self.follower.subscribe(wake)
        try:
            last_step = time.monotonic()
            while True:
                events = self.follower.read(position, self.batch)
                if events is None:  # fell behind the window: read the store
                    events = await self.call(self.reader.after, position, self.batch)
                if events:
                    position = events[-1].id
                    last_step = time.monotonic()
                    yield Step(events, position)
                    continue
                woken.clear()
                if self.follower.head > position:
                    continue  # appended between the read and the clear
                wait = self.tick - (time.monotonic() - last_step)
                if wait > 0:
                    try:
                        await asyncio.wait_for(woken.wait(), wait)
                        continue
                    except TimeoutError:
                        pass
                silent = self.follower.silent_for()
                if silent > self.silence:
                    raise LogSilent(
                        f"The store's log has not answered for {silent:.0f} s; resume from"
                        f" position {position}"
                    )
                last_step = time.monotonic()
                yield Step([], position)
        finally:
            unsubscribe()
