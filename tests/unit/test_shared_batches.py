"""The feed's shared history batches: a batch read once for every walk that asks for it, at
most `bound` full batches kept, the log's end never kept, and a failed read not kept either;
a memo's result computed once, and recomputed by the next asker when its computer left."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from uuid import uuid4

import pytest
from eventsourcing.persistence import Notification

from license_svc.reads.feed import Abandoned, Batch, Memo, SharedBatches


def log(size: int) -> list[Notification]:
    return [
        Notification(id=i, originator_id=uuid4(), originator_version=1, topic="t", state=b"")
        for i in range(1, size + 1)
    ]


def batch(got: Batch | Future[Batch]) -> Batch:
    return got if isinstance(got, Batch) else got.result(10)


class CountingLog:
    def __init__(self, size: int, gate: threading.Event | None = None) -> None:
        self.events = log(size)
        self.reads: list[tuple[int, int]] = []
        self.gate = gate

    def after(self, at: int, n: int) -> list[Notification]:
        if self.gate is not None:
            self.gate.wait(10)
        self.reads.append((at, n))
        return self.events[at : at + n]


def test_concurrent_askers_of_one_batch_share_one_read() -> None:
    gate = threading.Event()
    store = CountingLog(100, gate)
    shared = SharedBatches(bound=4)
    with ThreadPoolExecutor(2) as executor:
        futures = [shared.read(executor, store.after, 0, 10) for _ in range(50)]
        gate.set()
        batches = {id(batch(f)) for f in futures}
    assert store.reads == [(0, 10)]
    assert len(batches) == 1


def test_at_most_bound_full_batches_are_kept_the_least_recently_used_leaving() -> None:
    store = CountingLog(1_000)
    shared = SharedBatches(bound=3)
    with ThreadPoolExecutor(1) as executor:
        for at in range(0, 100, 10):
            batch(shared.read(executor, store.after, at, 10))
            assert len(shared) <= 3
        batch(shared.read(executor, store.after, 70, 10))  # kept: no read
        batch(shared.read(executor, store.after, 0, 10))  # left long ago: read again
    assert len(shared) == 3
    assert store.reads.count((70, 10)) == 1
    assert store.reads.count((0, 10)) == 2


def test_the_logs_end_and_a_failed_read_are_never_kept() -> None:
    store = CountingLog(15)
    shared = SharedBatches(bound=8)
    calls = 0

    def failing(at: int, n: int) -> list[Notification]:
        nonlocal calls
        calls += 1
        raise OSError("connection lost")

    with ThreadPoolExecutor(1) as executor:
        assert len(batch(shared.read(executor, store.after, 10, 10)).events) == 5
        batch(shared.read(executor, store.after, 10, 10))
        for _ in range(2):
            with pytest.raises(OSError):
                batch(shared.read(executor, failing, 20, 10))
    assert store.reads == [(10, 10), (10, 10)]
    assert calls == 2
    assert len(shared) == 0


def test_a_memo_computes_once_and_a_left_computation_passes_to_the_next_asker() -> None:
    memo = Memo()
    first, mine = memo.claim("facts")
    again, theirs = memo.claim("facts")
    assert mine and not theirs and again is first
    memo.abandon("facts", first)
    with pytest.raises(Abandoned):
        again.result(1)
    retry, mine = memo.claim("facts")
    assert mine and retry is not first
    retry.set_result({"k": 1})
    assert memo.claim("facts")[0].result(1) == {"k": 1}
    built: list[int] = []

    def build(value: int) -> int:
        built.append(value)
        return value

    assert memo.get("index", lambda: build(7)) == 7
    assert memo.get("index", lambda: build(8)) == 7
    assert built == [7]
    assert isinstance(retry, Future)
