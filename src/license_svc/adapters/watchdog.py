"""A bound on a database round trip that holds even when the database cannot say so.

The server's `statement_timeout` ends a slow statement, but its answer has to reach us: behind
a silent partition (a hung middlebox, a proxy that keeps the connection and passes nothing)
the client thread waits in `recv` for bytes that never come. TCP keepalives and the user
timeout end such a wait only when the peer's kernel stops answering; a middlebox's kernel
answers them for ever. So the threads that must not be pinned (the stream readers and the log
follower) run each round trip under `Watchdog.watch(conn)`: once it has taken longer than
`bound` (the statement timeout and a grace), the watchdog shuts the connection's socket down.
The blocked wait wakes, psycopg raises `OperationalError` (a fault: `UNAVAILABLE`), and the
pool discards the connection. Nothing is lost that the server had not already given up on.

One thread per watchdog, asleep while nothing is watched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("license_svc.db")


class Watchdog:
    def __init__(self, bound: float, name: str = "db-watchdog") -> None:
        self.bound = bound
        self.name = name
        self.ended = 0  # connections ended for outliving the bound (for tests and logs)
        self._cond = threading.Condition()
        self._watched: dict[int, tuple[float, int]] = {}  # token -> (deadline, socket's fd)
        self._next = 0
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, conn: Any) -> Iterator[None]:
        """Bound the round trips made inside the block on `conn` (a psycopg connection)."""
        fd = conn.fileno()
        with self._cond:
            self._next += 1
            token = self._next
            self._watched[token] = (time.monotonic() + self.bound, fd)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            # Under the lock: the fd is never shut down after the block left (and the
            # connection could have closed and its number been reused).
            with self._cond:
                self._watched.pop(token, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (deadline, fd) in list(self._watched.items()):
                    if deadline <= now:
                        del self._watched[token]
                        self.ended += 1
                        _shut_down(fd)
                        log.warning(
                            "%s: a database round trip took over %.0f s: connection ended",
                            self.name,
                            self.bound,
                        )
                if self._watched:
                    earliest = min(deadline for deadline, _ in self._watched.values())
                    self._cond.wait(max(0.05, earliest - now))
                else:
                    self._cond.wait()


def _shut_down(fd: int) -> None:
    """Shut the socket down under psycopg's feet: its wait wakes and reads the end. A duplicate
    descriptor is shut down (shutdown acts on the socket, not the descriptor), so psycopg's own
    descriptor stays valid until psycopg closes it."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
