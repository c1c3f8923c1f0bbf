"""The group-commit queue without a database: groups are bounded, the writer's role passes on,
each append gets its own outcome, and a failed transaction fails only its own group."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from license_svc.adapters.groupcommit import Append, GroupCommit, QueueFull


def event(version: int = 1, originator: UUID | None = None) -> StoredEvent:
    return StoredEvent(originator or uuid4(), version, "t", b"{}")


class FakeStore:
    """Numbers each append's events in order; holds the first group until released."""

    def __init__(self, fail_group: int | None = None) -> None:
        self.groups: list[int] = []
        self.next_id = 1
        self.fail_group = fail_group
        self.release = threading.Event()
        self.holding = threading.Event()

    def write(self, group: list[Append]) -> None:
        if not self.groups:
            self.holding.set()
            self.release.wait(timeout=30)
        self.groups.append(len(group))
        if self.fail_group == len(self.groups):
            raise ConnectionError("the transaction failed")
        for append in group:
            append.ids = list(range(self.next_id, self.next_id + len(append.events)))
            self.next_id += len(append.events)


def append_in_threads(
    commit: GroupCommit, batches: list[list[StoredEvent]]
) -> tuple[list[object], list[threading.Thread]]:
    """Each batch appended on a thread of its own: the results (ids or the exception), filled
    in as the threads finish, and the threads."""
    results: list[object] = [None] * len(batches)

    def run(i: int) -> None:
        try:
            results[i] = commit.append(batches[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    return results, threads


def wait_queued(commit: GroupCommit, count: int) -> None:
    while commit.queued() < count:
        threading.Event().wait(0.002)  # threads on their way to the queue


def test_a_lone_append_is_written_at_once_in_a_group_of_its_own() -> None:
    store = FakeStore()
    store.release.set()
    commit = GroupCommit(store.write)
    assert commit.append([event(), event(2)]) == [1, 2]
    assert store.groups == [1]


def test_groups_never_exceed_their_bound_and_every_queued_append_is_written() -> None:
    store = FakeStore()
    commit = GroupCommit(store.write, max_group=3)
    first, first_threads = append_in_threads(commit, [[event()]])
    store.holding.wait(timeout=30)
    rest, threads = append_in_threads(commit, [[event()] for _ in range(7)])
    wait_queued(commit, 7)
    store.release.set()
    for thread in [*first_threads, *threads]:
        thread.join(timeout=30)
    assert store.groups == [1, 3, 3, 1]
    ids = [i for result in [*first, *rest] if isinstance(result, list) for i in result]
    assert sorted(ids) == list(range(1, 9))
    assert (commit.groups, commit.appends) == (4, 8)


def test_a_failed_transaction_fails_its_own_group_and_the_next_group_is_written() -> None:
    store = FakeStore(fail_group=2)
    commit = GroupCommit(store.write)
    _, first_threads = append_in_threads(commit, [[event()]])
    store.holding.wait(timeout=30)
    failed, threads = append_in_threads(commit, [[event()], [event()]])
    wait_queued(commit, 2)
    store.release.set()
    for thread in [*first_threads, *threads]:
        thread.join(timeout=30)
    assert all(isinstance(result, ConnectionError) for result in failed)
    assert failed[0] is not failed[1]  # each thread raised an instance of its own
    assert commit.append([event()]) == [2]


def test_two_appends_of_one_group_claiming_one_version_leave_the_earlier_one_written() -> None:
    store = FakeStore()
    commit = GroupCommit(store.write)
    contested = uuid4()
    _, first_threads = append_in_threads(commit, [[event()]])
    store.holding.wait(timeout=30)
    earlier, earlier_threads = append_in_threads(commit, [[event(2, contested)]])
    wait_queued(commit, 1)
    later, later_threads = append_in_threads(commit, [[event(2, contested)]])
    wait_queued(commit, 2)
    store.release.set()
    for thread in [*first_threads, *earlier_threads, *later_threads]:
        thread.join(timeout=30)
    assert earlier == [[2]]
    [lost] = later
    assert isinstance(lost, IntegrityError)
    assert store.groups == [1, 1]


def test_an_append_claiming_one_version_twice_is_refused() -> None:
    store = FakeStore()
    store.release.set()
    originator = uuid4()
    with pytest.raises(IntegrityError):
        GroupCommit(store.write).append([event(1, originator), event(1, originator)])


def test_an_append_given_up_before_its_turn_hands_the_writers_role_on() -> None:
    store = FakeStore()
    commit = GroupCommit(store.write, max_group=1)
    _, first_threads = append_in_threads(commit, [[event()]])
    store.holding.wait(timeout=30)
    given_up = Append([event()])
    given_up.done = done = threading.Event()
    with commit._lock:  # as `append` queues it, before its thread was interrupted
        commit._queue.append(given_up)
    behind, behind_threads = append_in_threads(commit, [[event()]])
    wait_queued(commit, 2)
    store.release.set()
    done.wait(timeout=30)  # the first writer handed it the role...
    assert given_up.lead
    commit._abandon(given_up)  # ...just as its thread was interrupted
    for thread in [*first_threads, *behind_threads]:
        thread.join(timeout=30)
    assert behind == [[2]]
    assert store.groups == [1, 1]


class Job(Append):
    """An append that a coroutine submits (`submit_async`): its outcome is its ids."""


def test_coroutines_wait_on_their_loop_and_the_writers_role_passes_to_one_of_them() -> None:
    store = FakeStore()
    commit = GroupCommit(store.write)
    writer = ThreadPoolExecutor(1)

    async def run() -> list[Sequence[int]]:
        first = asyncio.ensure_future(commit.submit_async(Job([event()]), writer))
        while not store.holding.is_set():  # the first group is being written, held
            await asyncio.sleep(0.001)
        rest = [
            asyncio.ensure_future(commit.submit_async(Job([event()]), writer)) for _ in range(5)
        ]
        while commit.queued() < 5:
            await asyncio.sleep(0.001)
        store.release.set()
        return [job.outcome() for job in await asyncio.gather(first, *rest)]

    ids = asyncio.run(run())
    writer.shutdown()
    assert sorted(i for each in ids for i in each) == [1, 2, 3, 4, 5, 6]
    assert store.groups == [1, 5]  # the five that waited were one group, on the writer thread


def test_a_cancelled_coroutine_leaves_the_queue_unwritten_and_the_rest_go_on() -> None:
    store = FakeStore()
    commit = GroupCommit(store.write)
    writer = ThreadPoolExecutor(1)

    async def run() -> tuple[list[Sequence[int]], bool]:
        first = asyncio.ensure_future(commit.submit_async(Job([event()]), writer))
        while not store.holding.is_set():
            await asyncio.sleep(0.001)
        leaving = asyncio.ensure_future(commit.submit_async(Job([event()]), writer))
        staying = asyncio.ensure_future(commit.submit_async(Job([event()]), writer))
        while commit.queued() < 2:
            await asyncio.sleep(0.001)
        leaving.cancel()  # its client went away before its turn
        await asyncio.sleep(0)
        store.release.set()
        done = await asyncio.gather(first, staying)
        return [job.outcome() for job in done], leaving.cancelled()

    ids, cancelled = asyncio.run(run())
    writer.shutdown()
    assert cancelled
    assert ids == [[1], [2]]
    assert store.groups == [1, 1]  # the cancelled one was never written


def test_past_its_bound_a_coroutine_is_refused_at_once_and_queues_nothing() -> None:
    store = FakeStore()
    commit = GroupCommit(store.write, max_waiting=2)
    writer = ThreadPoolExecutor(1)

    async def run() -> list[Sequence[int]]:
        first = asyncio.ensure_future(commit.submit_async(Job([event()]), writer))
        while not store.holding.is_set():
            await asyncio.sleep(0.001)
        waiting = [
            asyncio.ensure_future(commit.submit_async(Job([event()]), writer)) for _ in range(2)
        ]
        while commit.queued() < 2:
            await asyncio.sleep(0.001)
        with pytest.raises(QueueFull):
            await commit.submit_async(Job([event()]), writer)
        assert commit.queued() == 2
        store.release.set()
        return [job.outcome() for job in await asyncio.gather(first, *waiting)]

    ids = asyncio.run(run())
    writer.shutdown()
    assert ids == [[1], [2], [3]]
