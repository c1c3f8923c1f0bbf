"""How the server serves its streams: on the event loop, capped, and never behind a slow reader.

The server is a `grpc.aio` server (see `server.py`): unary methods are sync functions run on
its thread pool of `grpc_workers` threads, exactly as before; streaming methods are coroutines
on the event loop and hold no thread while they wait. A stream handler is written as

    async def StreamX(self, request, context):
        with self._streams.slot():                 # past the cap: RESOURCE_EXHAUSTED + RetryInfo
            send = self._streams.sender(context)
            async for step in self._streams.feed.walk(after, follow):   # license_svc.reads.feed
                await send(response, position)      # a stalled reader: RESOURCE_EXHAUSTED

- `slot(caller)` counts the process's open streams and each caller's; past `max_streams`, or
  past the caller's share of them (`per_caller`), a new one is refused at once with
  `StreamsExhausted` (RESOURCE_EXHAUSTED, RetryInfo), before it reads anything.
- `sender(context)` writes one message at a time and waits for gRPC's flow control to take it.
  A reader that stops reading fills its HTTP/2 window; the write then waits, and so does the
  stream's walk (it holds one batch): memory per stream stays bounded. A write that has waited
  `stall_seconds` ends the stream with `ConsumerTooSlow` (RESOURCE_EXHAUSTED), naming the
  position to resume after: the position of the last message handed to gRPC (the waiting one
  included: it is delivered before the status, if the status is delivered at all).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from license_svc.reads.events import FactCache
from license_svc.reads.feed import LogFeed

Send = Callable[[Any, int], Awaitable[None]]


class StreamsExhausted(Exception):
    """This server already serves as many streams as it is configured to (for this caller)."""

    def __init__(self, cap: int, whose: str = "") -> None:
        super().__init__(
            f"This server already serves its maximum of {cap} streams{whose}; retry later"
        )


class ConsumerTooSlow(Exception):
    """The client did not take a message for longer than the configured stall time."""

    def __init__(self, resume_after: int, stall_seconds: float) -> None:
        super().__init__(
            f"The stream could not keep up for {stall_seconds:g}s and was ended;"
            f" resume with after_position={resume_after}"
        )
        self.resume_after = resume_after


class Streams:
    def __init__(
        self, feed: LogFeed, max_streams: int, stall_seconds: float, share_percent: int = 100
    ) -> None:
        self.feed = feed
        self.max_streams = max_streams
        # One caller's cap: its share of the slots, at least one.
        self.per_caller = max(1, max_streams * share_percent // 100)
        self._by_caller: dict[Hashable, int] = {}
        self.stall_seconds = stall_seconds
        self.facts = FactCache()  # StreamEvents' key facts, one bounded cache for every stream
        self._open = 0
        self._lock = threading.Lock()
        self._writers: weakref.WeakSet[_Writer] = weakref.WeakSet()
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def open(self) -> int:
        return self._open

    @contextmanager
    def slot(self, caller: Hashable = None) -> Iterator[None]:
        """One stream's slot, counted for the process and for `caller` (its principal)."""
        with self._lock:
            if self._open >= self.max_streams:
                raise StreamsExhausted(self.max_streams)
            held = self._by_caller.get(caller, 0)
            if held >= self.per_caller:
                raise StreamsExhausted(self.per_caller, " for one caller")
            self._open += 1
            self._by_caller[caller] = held + 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                left = self._by_caller.pop(caller) - 1
                if left:  # a caller with no stream leaves no entry: the map is bounded too
                    self._by_caller[caller] = left

    def sender(self, context: Any) -> Send:
        """Call from the stream's own task. A write marks when it began; the process's one
        watchdog cancels a stream whose write has waited `stall_seconds`, and its send turns
        that into `ConsumerTooSlow`. Nothing is scheduled per write: a change written to a
        thousand watchers is a thousand of these."""
        task = asyncio.current_task()
        assert task is not None
        writer = _Writer(task)
        self._writers.add(writer)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = task.get_loop().create_task(self._watch_writes())
        stall = self.stall_seconds

        async def send(message: Any, position: int) -> None:
            writer.since = time.monotonic()
            try:
                await context.write(message)
            except asyncio.CancelledError:
                if not writer.fired or task.uncancel() > 0:
                    raise  # the client left, or the server is stopping
                raise ConsumerTooSlow(position, stall) from None
            finally:
                writer.since = 0.0

        return send

    async def close(self) -> None:
        """After the server stopped (on its loop): the watchdog is not left pending."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with suppress(asyncio.CancelledError):
                await self._watchdog

    async def _watch_writes(self) -> None:
        """Ends with the last stream (the next one starts it again)."""
        period = min(1.0, self.stall_seconds / 4)
        while self._writers:
            await asyncio.sleep(period)
            late = time.monotonic() - self.stall_seconds
            for writer in list(self._writers):
                if 0.0 < writer.since <= late:
                    writer.fire()


class _Writer:
    """One stream's write in progress (`since`, 0 when none), for the watchdog."""

    __slots__ = ("__weakref__", "fired", "since", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.since = 0.0
        self.fired = False

    def fire(self) -> None:
        if not self.fired:
            self.fired = True
            self.task.cancel()
