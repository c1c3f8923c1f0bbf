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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from eventsourcing.persistence import Notification

from license_svc.adapters.watchdog import Watchdog

from .storelog import LogFollower, LogReader, LogSilent, StoreNames

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    events: list[Notification]
    upto: int
    caught_up: bool = False


@dataclass(eq=False)
class LogFeed:
    follower: LogFollower
    reader: LogReader
    executor: Executor
    batch: int = 500
    tick: float = 1.0
    silence: float = float("inf")

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
            events = await self.call(self.reader.after, position, self.batch)
            events = [e for e in events if e.id <= target]
            if not events:
                break  # nothing more below the target (ids the store skipped)
            position = events[-1].id
            yield Step(events, position)
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
