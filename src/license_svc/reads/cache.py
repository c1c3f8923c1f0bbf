"""The position-aware cache of account answers (allowance, summary), one per server process.

An entry is a view's answer for one (account, product), the position it was read at, and the
span of time it holds for: from the instant it was computed to its `valid_until` (the read-time
rule changes the answer then, with no event). It is answered only while it is *known current*:

- The view's notices (`projections.base.Notice`) say which accounts each batch changed; a notice
  drops the named accounts' entries read before its position, or every entry of the view when it
  names none. Postgres delivers notices in commit order, so once the notice of position H was
  heard, an entry still present is current at H too (the answer then carries max(its, H)).
- A read racing a notice: `begin` hands a ticket before the database read; a notice for that
  account heard meanwhile marks it, and `put` then refuses to store an answer older than it.
- A lost LISTEN connection empties the cache and keeps it empty until LISTEN is back (notices
  sent meanwhile are lost); tickets begun before the loss are refused.
- A read with `min_position` is answered only when the entry is current at that position.

Bounded by `max_entries` (least recently used goes first); 0 turns the cache off.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from projections.changes import Notice

T = TypeVar("T")
Key = tuple[str, str, str]  # (view generation, account_id, product)


@dataclass
class Ticket:
    key: Key
    epoch: int
    changed_at: int = 0  # the highest notice position for this key heard since `begin`


@dataclass
class _Entry(Generic[T]):
    value: T
    position: int
    since: datetime  # the answer holds from here ...
    until: datetime | None  # ... to here (None: until an event changes it)


@dataclass
class _Stats:
    hits: int = 0
    misses: int = 0
    dropped: int = 0
    cleared: int = 0


class AccountCache(Generic[T]):
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, _Entry[T]] = OrderedDict()
        self._by_account: dict[tuple[str, str], set[Key]] = {}
        self._tickets: dict[Key, list[Ticket]] = {}
        self._heard: dict[str, int] = {}  # view generation → highest notice position heard
        self._views: set[str] = set()  # the view generations it has held answers of
        self._epoch = 0
        self._listening = False
        self._lock = threading.Lock()
        self.stats = _Stats()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def heard_position(self, view: str) -> int:
        """The highest position of `view`'s notices heard (reads never raise it)."""
        with self._lock:
            return self._heard.get(view, 0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: Key, now: datetime, min_position: int) -> tuple[T, int] | None:
        """The cached answer and the position it is current at, if it is known current at
        `now` and at `min_position`; else None (read the database)."""
        with self._lock:
            entry = self._entries.get(key) if self._listening else None
            if entry is None:
                self.stats.misses += 1
                return None
            if entry.until is not None and now >= entry.until:
                self._remove(key)  # the read-time rule answers otherwise from here on
                self.stats.misses += 1
                return None
            if now < entry.since:  # a call that read the clock before the entry was made
                self.stats.misses += 1
                return None
            position = max(entry.position, self._heard.get(key[0], 0))
            if position < min_position:
                self.stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return entry.value, position

    def begin(self, key: Key) -> Ticket | None:
        """Before a database read whose answer may be stored; None while not listening."""
        with self._lock:
            if not (self._listening and self.enabled):
                return None
            self._views.add(key[0])
            ticket = Ticket(key, self._epoch)
            self._tickets.setdefault(key, []).append(ticket)
            return ticket

    def cancel(self, ticket: Ticket | None) -> None:
        """The read failed: forget the ticket."""
        if ticket is not None:
            with self._lock:
                self._drop_ticket(ticket)

    def put(
        self,
        ticket: Ticket | None,
        value: T,
        position: int,
        since: datetime,
        until: datetime | None,
    ) -> None:
        """Store what the database answered at `position`, unless a notice heard since the
        ticket was taken says the account changed after it, or the listener was lost."""
        if ticket is None:
            return
        with self._lock:
            self._drop_ticket(ticket)
            if ticket.epoch != self._epoch or not self._listening:
                return
            if ticket.changed_at > position:
                self.stats.dropped += 1
                return
            key = ticket.key
            known = self._entries.get(key)
            if known is not None and known.position > position:
                return  # a later answer is already there
            self._entries[key] = _Entry(value, position, since, until)
            self._entries.move_to_end(key)
            self._by_account.setdefault(key[:2], set()).add(key)
            while len(self._entries) > self.max_entries:
                self._remove(next(iter(self._entries)))

    # -- what the listener tells it ---------------------------------------------------------

    def heard(self, notice: Notice) -> None:
        """A notice: its accounts (None: any account) of its view changed up to its position."""
        view, position, accounts = notice.view, notice.last, notice.accounts
        with self._lock:
            if position > self._heard.get(view, 0):
                self._heard[view] = position
            if view not in self._views:
                return  # a view it never cached (the key catalog): nothing to drop
            if accounts is None:
                stale = [
                    k for k, e in self._entries.items() if k[0] == view and e.position < position
                ]
                tickets = [t for k, ts in self._tickets.items() if k[0] == view for t in ts]
            else:
                stale, tickets = [], []
                for account in accounts:
                    for key in self._by_account.get((view, account), ()):
                        if self._entries[key].position < position:
                            stale.append(key)
                for key, waiting in self._tickets.items():
                    if key[0] == view and key[1] in accounts:
                        tickets.extend(waiting)
            for key in stale:
                self._remove(key)
            for ticket in tickets:
                ticket.changed_at = max(ticket.changed_at, position)

    def forget(self, account_id: str, position: int) -> None:
        """This server changed the account at store `position` (a seat lease granted or
        released here): its answers are no longer current, and a read in flight that began
        before may not keep what it read. The view's notice follows when it has the change."""
        with self._lock:
            # Through the index by account, not a scan of every entry: a grant or release
            # costs the same with 10 answers cached or 100,000 (a scan doubled a seat command's
            # server CPU once reads had filled the cache).
            for view in self._views:
                for key in list(self._by_account.get((view, account_id), ())):
                    self._remove(key)
            for key, waiting in self._tickets.items():
                if key[1] == account_id:
                    for ticket in waiting:
                        ticket.changed_at = max(ticket.changed_at, position)

    def connected(self) -> None:
        """LISTEN is in place (again): answers read from now on may be kept."""
        with self._lock:
            self._clear()
            self._listening = True

    def lost(self) -> None:
        """The LISTEN connection is gone: nothing cached can be known current any more."""
        with self._lock:
            self._clear()
            self._listening = False

    def _clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._by_account.clear()
        self.stats.cleared += 1

    def _remove(self, key: Key) -> None:
        self._entries.pop(key, None)
        keys = self._by_account.get(key[:2])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_account[key[:2]]

    def _drop_ticket(self, ticket: Ticket) -> None:
        waiting = self._tickets.get(ticket.key)
        if waiting is None:
            return
        waiting[:] = [t for t in waiting if t is not ticket]
        if not waiting:
            del self._tickets[ticket.key]
