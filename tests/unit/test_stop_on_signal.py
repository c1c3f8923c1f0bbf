"""Ctrl-C while a stream is followed cancels the stream from a thread of ours and raises
nothing in the main thread (a KeyboardInterrupt landing inside gRPC's call bookkeeping could
leave the channel unclosable); afterwards Ctrl-C is handled as it was before (Python's handler,
or ignored where the process was started in the background without job control)."""

from __future__ import annotations

import os
import signal
import threading

from license_svc.entrypoints.client.streams import StopOnSignal


class Stream:
    """Stands in for the gRPC call: records that it was cancelled."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def cancel(self) -> bool:
        self.cancelled.set()
        return True


def test_ctrl_c_cancels_the_stream_and_raises_nothing_in_the_main_thread() -> None:
    stream = Stream()
    before = signal.getsignal(signal.SIGINT)
    with StopOnSignal(stream) as stop:  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGINT)
        assert stream.cancelled.wait(60)  # a guard against a hang, not a speed check
        assert stop.stopped
    assert signal.getsignal(signal.SIGINT) is before


def test_leaving_without_a_signal_cancels_nothing_and_restores_the_handlers() -> None:
    stream = Stream()
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with StopOnSignal(stream) as stop:  # type: ignore[arg-type]
        pass
    assert not stop.stopped and not stream.cancelled.is_set()
    assert {s: signal.getsignal(s) for s in before} == before
