"""One way to keep a background task going: every listener, follower and periodic loop of the
service runs under `supervise`, so each survives a lost database the same way.

- A task that raises is logged in one line and run again after a backoff that starts at
  `first`, doubles up to `cap` and is jittered by ±20 % (replicas that lost the database
  together do not reconnect in step). The caps are low on purpose: the service is back within
  a second or two of an outage.
- A task that ran at least `cap` seconds before it failed had been healthy: its backoff starts
  at `first` again (a LISTEN session that ran for a day and then lost its connection).
- A task that returns is run again after `every` seconds (a periodic job), or at once (0).
- Every wait is on the `stopping` event: a stop is never held up by a sleep.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable


class Backoff:
    """Exponential backoff with jitter: `next()` the wait before a retry, `reset()` on success."""

    def __init__(self, first: float, cap: float, jitter: float = 0.2) -> None:
        if not 0 < first <= cap:
            raise ValueError("need 0 < first <= cap")
        self.first, self.cap, self.jitter = first, cap, jitter
        self._current = first

    def next(self) -> float:
        wait = self._current
        self._current = min(self._current * 2, self.cap)
        return wait * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self._current = self.first


def supervise(
    task: Callable[[], object],
    stopping: threading.Event,
    *,
    what: str,
    log: logging.Logger,
    every: float = 0.0,
    first: float = 0.2,
    cap: float = 1.0,
) -> None:
    """Run `task` until `stopping` is set (see the module's rules)."""
    backoff = Backoff(first, max(first, min(cap, every) if every else cap))
    while not stopping.is_set():
        started = time.monotonic()
        try:
            task()
        except Exception as error:
            if stopping.is_set():
                return
            if time.monotonic() - started >= backoff.cap:
                backoff.reset()
            wait = backoff.next()
            log.warning("%s: %s; again in %.1fs", what, " ".join(str(error).split()), wait)
            stopping.wait(wait)
            continue
        backoff.reset()
        if every:
            stopping.wait(every)


class Periodic(threading.Thread):
    """A background thread that runs `task` every `every` seconds under `supervise` (a failed
    run is retried within `first` seconds), until `stop`: the sweepers and upkeep loops."""

    def __init__(
        self, name: str, task: Callable[[], object], every: float, *, log: logging.Logger,
        first: float = 0.5,
    ) -> None:  # fmt: skip
        super().__init__(name=name, daemon=True)
        self._task, self._every, self._log = task, every, log
        self._first = min(every, first)
        self._stopping = threading.Event()

    def run(self) -> None:
        what = f"{self.name} failed"
        supervise(
            self._task, self._stopping, what=what, log=self._log, every=self._every,
            first=self._first,
        )  # fmt: skip

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)
