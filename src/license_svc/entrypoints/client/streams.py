"""Following a server stream until Ctrl-C (`audit events --follow`, `watch`).

Python delivers Ctrl-C by raising KeyboardInterrupt in the main thread at whatever bytecode it
is running. While a stream is open that can be inside gRPC's own bookkeeping of the call
(between taking the call's lock and entering the block that releases it, or inside
`Condition.wait`'s bookkeeping). The call is then left half-updated, the channel's spin thread
blocks on it, and closing the channel waits for ever: the follower does not exit. An idle
process sleeps inside gRPC's 0.1 s waits, where the interrupt is harmless; on a loaded machine
the signal more often finds the main thread mid-work — the test that sends Ctrl-C failed only
under load.

So while a stream is followed, SIGINT and SIGTERM raise nothing: the C-level handler writes the
signal to a pipe (`signal.set_wakeup_fd`), a thread of ours reads it and cancels the stream,
and the main thread leaves its loop through the ordinary CANCELLED error.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType

import grpc

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """Runs in the main thread wherever it is: does nothing there (the pipe does the work)."""


class StopOnSignal:
    """`with StopOnSignal(stream) as stop:` — Ctrl-C cancels `stream`; `stop.stopped` says so."""

    def __init__(self, stream: grpc.Future) -> None:
        self.stream = stream
        self.stopped = False

    def __enter__(self) -> StopOnSignal:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # the signal handler must never block on it
        self._handlers = {s: signal.signal(s, _ignore) for s in STOP_SIGNALS}
        self._wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, name="stop-on-signal", daemon=True).start()
        return self

    def _watch(self) -> None:
        try:
            if os.read(self._read, 1):  # a signal's number; b"" when __exit__ closes the pipe
                self.stopped = True
                self.stream.cancel()
        finally:
            os.close(self._read)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        signal.set_wakeup_fd(self._wakeup)
        for number, handler in self._handlers.items():
            signal.signal(number, handler)
        os.close(self._write)  # ends the watcher's read
