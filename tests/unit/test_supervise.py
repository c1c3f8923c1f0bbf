"""The one supervised loop: retries with a capped, jittered backoff; resets after a healthy run;
never sleeps past a stop."""

from __future__ import annotations

import logging
import threading

import pytest

from license_svc.adapters.supervise import Backoff, supervise

log = logging.getLogger("test")


def test_backoff_doubles_up_to_its_cap_within_its_jitter():
    backoff = Backoff(0.2, 1.0, jitter=0.2)
    waits = [backoff.next() for _ in range(6)]
    for wait, nominal in zip(waits, [0.2, 0.4, 0.8, 1.0, 1.0, 1.0], strict=True):
        assert nominal * 0.8 <= wait <= nominal * 1.2
    backoff.reset()
    assert backoff.next() <= 0.24


def test_backoff_refuses_a_first_wait_past_its_cap():
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


class Stopper(threading.Event):
    """A stop event that records the waits asked of it and sets itself after `runs` of them."""

    def __init__(self, runs: int) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.runs = runs

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        if len(self.waits) >= self.runs:
            self.set()
        return self.is_set()


def test_a_failing_task_is_retried_with_growing_waits_and_one_line_each(caplog):
    stopping = Stopper(runs=4)
    calls: list[int] = []

    def task() -> None:
        calls.append(1)
        raise ConnectionError("database\n away")

    with caplog.at_level(logging.WARNING):
        supervise(task, stopping, what="follower", log=log, first=0.1, cap=0.4)
    assert len(calls) == 4
    assert stopping.waits[0] < stopping.waits[1] < stopping.waits[2]
    assert all(w <= 0.4 * 1.2 for w in stopping.waits)
    assert all("\n" not in r.getMessage() for r in caplog.records)
    assert "follower: database away; again in" in caplog.records[0].getMessage()


def test_a_periodic_task_runs_every_interval_and_retries_sooner_after_a_failure():
    stopping = Stopper(runs=3)
    outcomes = iter([None, ValueError("once"), None])

    def task() -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    supervise(task, stopping, what="sweep", log=log, every=30.0, first=0.5, cap=1.0)
    assert stopping.waits[0] == 30.0
    assert stopping.waits[1] <= 0.5 * 1.2
    assert stopping.waits[2] == 30.0


def test_nothing_runs_once_stopped():
    stopping = threading.Event()
    stopping.set()
    supervise(lambda: pytest.fail("ran"), stopping, what="x", log=log)
