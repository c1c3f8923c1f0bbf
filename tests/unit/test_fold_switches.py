"""A fold shortens the GIL's switch interval while it runs (its reader thread needs the GIL
after every socket read) and gives the process its own interval back when the last fold ends,
however the folds of one process overlap or fail."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from projections.workers import fold


@pytest.fixture(autouse=True)
def python_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def test_a_fold_runs_at_the_short_interval_and_restores_the_process_one() -> None:
    with fold._quick_switches():
        assert sys.getswitchinterval() == pytest.approx(fold.SWITCH_INTERVAL, rel=0.05)
    assert sys.getswitchinterval() == pytest.approx(0.005, rel=0.05)


def test_a_failing_fold_restores_it_too() -> None:
    with pytest.raises(RuntimeError), fold._quick_switches():
        raise RuntimeError("the fold failed")
    assert sys.getswitchinterval() == pytest.approx(0.005, rel=0.05)


def test_overlapping_folds_restore_it_only_when_the_last_one_ends() -> None:
    first_in, second_out = threading.Event(), threading.Event()

    def second() -> None:
        first_in.wait()
        with fold._quick_switches():
            pass
        second_out.set()

    thread = threading.Thread(target=second)
    thread.start()
    with fold._quick_switches():
        first_in.set()
        second_out.wait()
        assert sys.getswitchinterval() == pytest.approx(fold.SWITCH_INTERVAL, rel=0.05)
    thread.join()
    assert sys.getswitchinterval() == pytest.approx(0.005, rel=0.05)


def test_a_process_already_quicker_keeps_its_interval() -> None:
    sys.setswitchinterval(0.0001)
    with fold._quick_switches():
        assert sys.getswitchinterval() == pytest.approx(0.0001, rel=0.05)
    assert sys.getswitchinterval() == pytest.approx(0.0001, rel=0.05)
