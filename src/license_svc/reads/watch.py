"""WatchSeatAllowance's live part: one channel per watched (account, product), on the event loop.

A channel holds the account's current allowance and its position. It is re-read — once, however
many watch it — when the allowance view's notice names the account (or names nobody: a big
batch), when LISTEN is back after a loss (notices may have been missed), and at the answer's own
`valid_until`: the read-time rule changes the answer then with no event, so the channel wakes by
the injected clock, not by a sweeper. A timer task keeps the channels' deadlines in a heap and
looks at the clock at least every TICK_SECONDS (a test's clock jumps; a real one is slept to the
instant). A channel has one deadline at a time, and it leaves with the channel: the heap holds at
most 2 × the open channels + SPARE_DEADLINES entries (stale ones are dropped by a rebuild), so
watchers that reconnect on every deploy do not leave a month-long entry behind each time. Only a
change a watcher can see (seats, tier, active, valid_until, seats_leased) is published — a seat
lease's grant or release, not its renewal — so a watcher gets exactly one message per change.
The reads run on a small pool of their own, never on
the unary threads, and through the account cache (a notice has already dropped what it changed).

Watchers are coroutines on the server's event loop; the listener thread hands notices over with
`call_soon_threadsafe`. A change reaches a thousand watchers of one account as a thousand
writes, so what each watcher does per change is kept small: it waits on a future of its own (a
cancelled watcher cancels nobody else's), and what the API derives from a published answer (its
encoded message) is kept on the answer's `Published`, so it is built once per change, not once
per watcher.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from license_svc.domain.subscription import Subscription
from license_svc.domain.tiers import Product
from projections.allowance import AllowanceView
from projections.base import generation_name
from projections.changes import Notice

from .accounts import AccountReads
from .live import LiveViews

log = logging.getLogger("license_svc.watch")

TICK_SECONDS = 0.2
READ_TIMEOUT = 10.0
RETRY_SECONDS = 1.0
SPARE_DEADLINES = 64  # stale heap entries tolerated before the heap is rebuilt
Key = tuple[str, Product]
Answer = tuple[Subscription, int]


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout` seconds."""
    with suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()


def visible(found: Subscription) -> tuple[object, ...]:
    """What a SeatAllowance shows of a subscription: a change of anything else is no update."""
    return (found.seats, found.tier, found.active, found.valid_until, found.seats_leased)


class Published:
    """One version of a channel's answer, the same object for all its watchers. `memo` is theirs
    to keep what they derive from it (the API keeps the encoded message per connections count)."""

    __slots__ = ("answer", "memo")

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.memo: dict[Any, Any] = {}


class Channel:
    """One watched (account, product): its latest answer, and the watchers waiting for the next."""

    def __init__(self, watch: AllowanceWatch, key: Key) -> None:
        self._watch = watch
        self.key = key
        self.current: Published | None = None
        self.version = 0
        self.watchers = 0
        self.closed = False
        self._waiting: dict[asyncio.Future[None], None] = {}  # one future per waiting watcher
        self._due: int | None = None  # a re-read is wanted, at least at this position
        self._reading = False

    @property
    def value(self) -> Answer | None:
        return self.current.answer if self.current is not None else None

    async def next(self, seen: int) -> Published:
        """The first version after `seen` (waits for it)."""
        while self.version <= seen:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[waiter] = None
            try:
                await waiter
            finally:
                self._waiting.pop(waiter, None)
        assert self.current is not None
        return self.current

    def refresh(self, position: int) -> None:
        self._due = max(position, self._due or 0)
        if not self._reading:
            self._reading = True
            asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while self._due is not None and not self.closed:
                position, self._due = self._due, None
                try:
                    found = await self._watch.read(self.key, position)
                except Exception as error:  # the database is away: keep the stream, try again
                    log.warning("watch %s: %s; re-reading in %.0fs", self.key[0], error, 1)
                    self._due = max(position, self._due or 0)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                self._publish(found)
        finally:
            self._reading = False

    def _publish(self, found: Answer) -> None:
        subscription, position = found
        current = self.value
        if current is not None and visible(current[0]) == visible(subscription):
            if position > current[1]:  # later joiners get the later position
                self.current = Published((current[0], position))
            return
        self.current = Published(found)
        self.version += 1
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)
        if subscription.valid_until is not None:
            self._watch.wake_at(subscription.valid_until, self)


class AllowanceWatch:
    """One per server process: the channels, the feeds' wake-ups, the clock's timer."""

    def __init__(self, views: LiveViews, clock: Callable[[], datetime], threads: int = 2) -> None:
        self._views = views
        self._reads = AccountReads(views)
        self._clock = clock
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="watch-read")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channels: dict[Key, Channel] = {}
        self._feeds: set[asyncio.Event] = set()
        self._deadlines: list[tuple[datetime, int, Channel]] = []  # may hold stale entries
        self._due: dict[Channel, datetime] = {}  # each open channel's one deadline
        self._order = itertools.count()
        self._timer: asyncio.Task[None] | None = None
        self._timer_wake: asyncio.Event | None = None
        views.notices.subscribe(self)

    # -- what watchers call (on the loop) ----------------------------------------------------

    async def follow(self, account_id: str, product: Product) -> AsyncIterator[Published]:
        """The account's allowance now, then once per visible change, for as long as iterated."""
        self._attach()
        key = (account_id, product)
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = Channel(self, key)
            channel.refresh(0)
        channel.watchers += 1
        try:
            seen = 0
            while True:
                published = await channel.next(seen)
                seen = channel.version
                yield published
        finally:
            channel.watchers -= 1
            if channel.watchers == 0 and self._channels.get(key) is channel:
                channel.closed = True
                del self._channels[key]
                self._due.pop(channel, None)
                self._compact()

    @contextmanager
    def waker(self) -> Iterator[asyncio.Event]:
        """For a change feed: an event set at every allowance notice while the feed lives (the
        feed clears it before each read, so a notice heard during a read is never lost)."""
        self._attach()
        event = asyncio.Event()
        self._feeds.add(event)
        try:
            yield event
        finally:
            self._feeds.discard(event)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A blocking read on the watch's own threads."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def allowances(
        self, accounts: list[tuple[str, str]], now: datetime
    ) -> tuple[dict[tuple[str, str], Subscription], int]:
        """Several accounts' allowances, seat leases included (the change feed)."""
        answers, position = self.view.allowances(accounts, now)
        return self._views.with_leases(answers, now), position

    @property
    def view(self) -> AllowanceView:
        view = self._views.view(AllowanceView.name)
        assert isinstance(view, AllowanceView)
        return view

    def now(self) -> datetime:
        return self._clock()

    async def read(self, key: Key, position: int) -> Answer:
        account_id, product = key
        answer: Answer = await self.call(
            self._reads.allowance, account_id, product, self._clock(), position, READ_TIMEOUT
        )
        return answer

    @property
    def deadlines(self) -> int:
        """Entries in the timer's heap (bounded by the open channels)."""
        return len(self._deadlines)

    def wake_at(self, instant: datetime, channel: Channel) -> None:
        if channel.closed or self._due.get(channel) == instant:
            return
        self._due[channel] = instant  # replaces the channel's earlier deadline
        heapq.heappush(self._deadlines, (instant, next(self._order), channel))
        self._compact()
        if self._timer_wake is not None:
            self._timer_wake.set()

    def _compact(self) -> None:
        """Drop the stale entries once they outnumber the live ones (amortised O(1))."""
        if len(self._deadlines) > 2 * len(self._due) + SPARE_DEADLINES:
            self._deadlines = [(at, next(self._order), c) for c, at in self._due.items()]
            heapq.heapify(self._deadlines)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- notices.Subscriber (the listener thread) --------------------------------------------

    def heard(self, notice: Notice) -> None:
        live = generation_name(AllowanceView.name, self._views.live_generation(AllowanceView.name))
        if notice.view == live:
            self._soon(self._changed, notice.accounts, notice.last)

    def connected(self) -> None:
        self._soon(self._changed, None, 0)  # whatever changed while LISTEN was away

    def lost(self) -> None:
        pass  # channels keep their last answer; `connected` re-reads them all

    # -- on the loop -------------------------------------------------------------------------

    def _soon(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _attach(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._timer is None or self._timer.done():
            self._timer_wake = asyncio.Event()
            self._timer = self._loop.create_task(self._tick())

    def _changed(self, accounts: frozenset[str] | None, position: int) -> None:
        for key, channel in list(self._channels.items()):
            if accounts is None or key[0] in accounts:
                channel.refresh(position)
        for event in self._feeds:
            event.set()

    async def _tick(self) -> None:
        assert self._timer_wake is not None
        while self._channels:  # ends with the last watcher (the next one starts it again)
            now = self._clock()
            while self._deadlines and self._deadlines[0][0] <= now:
                instant, _, channel = heapq.heappop(self._deadlines)
                if self._due.get(channel) != instant:
                    continue  # stale: the channel closed or has a later deadline
                del self._due[channel]
                current = channel.value
                if not channel.closed and current and current[0].valid_until == instant:
                    channel.refresh(0)
            delay = TICK_SECONDS
            if self._deadlines:
                delay = min(delay, max(0.0, (self._deadlines[0][0] - now).total_seconds()))
            await wait_set(self._timer_wake, delay)
            self._timer_wake.clear()
