"""Background threads that live and die with their owner."""

from __future__ import annotations

import threading
from collections.abc import Sequence


class Threads:
    """Started together, alive only while every one is, joined together on stop."""

    def __init__(self, threads: Sequence[threading.Thread]) -> None:
        self.threads = list(threads)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def is_alive(self) -> bool:
        """Every thread still running: for the health endpoint."""
        return all(thread.is_alive() for thread in self.threads)

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for each thread still running."""
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout)
