"""Group commit against real Postgres: saves waiting at the same moment share one transaction,
and each keeps the outcome it would have had alone."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from license_svc.adapters.eventstore import LicensingRecorder
from license_svc.adapters.groupcommit import Append, GroupCommit
from license_svc.bootstrap import Service
from tests.helpers import EVENTS_TABLE
from tests.views_support import fresh_database

TOPIC = "tests.group:Event"


def event(originator: UUID, version: int) -> StoredEvent:
    return StoredEvent(originator, version, TOPIC, f"{originator}/{version}".encode())


class HeldWriter:
    """The recorder's group writer, with its first group held until `release()`: the appends
    that arrive meanwhile queue, and are then written as one group."""

    def __init__(self, recorder: LicensingRecorder) -> None:
        self.recorder = recorder
        self.groups: list[list[Append]] = []
        self._held = threading.Event()
        self.holding = threading.Event()  # the first group is being written (and held)
        self._first = True
        recorder.group_commit = self.commit = GroupCommit(self.write)

    def write(self, group: list[Append]) -> None:
        if self._first:
            self._first = False
            self.holding.set()
            self._held.wait(timeout=60)
        self.groups.append(group)
        self.recorder._write_group(group)

    def release(self) -> None:
        self._held.set()

    def wait_queued(self, count: int) -> None:
        while self.commit.queued() < count:
            threading.Event().wait(0.005)  # threads on their way to the queue


@pytest.fixture(scope="module")
def own_database(database_url: str) -> Iterator[str]:
    """The events here have a topic no view knows: they must not reach the shared store."""
    with fresh_database(database_url) as url:
        yield url


@pytest.fixture
def service(make_service: Callable[..., Service], own_database: str) -> Service:
    return make_service(database_url=own_database)


@pytest.fixture
def held(service: Service) -> Iterator[HeldWriter]:
    recorder = service.app.store
    writer = HeldWriter(recorder)
    yield writer
    writer.release()
    recorder.use_group_commit(True)


def in_threads(*calls: Callable[[], object]) -> list[object]:
    """Run each call in a thread of its own; each one's result or exception, in order."""
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def stored_positions(service: Service, originators: list[UUID]) -> dict[tuple[UUID, int], int]:
    with service.app.store.datastore.get_connection() as conn:
        rows = conn.execute(
            f"SELECT originator_id, originator_version, notification_id FROM {EVENTS_TABLE}"
            " WHERE originator_id = ANY(%s)",
            (originators,),
        ).fetchall()
    return {
        (row["originator_id"], row["originator_version"]): row["notification_id"] for row in rows
    }


def test_appends_waiting_together_are_written_in_one_group_each_with_its_own_ids(
    service: Service, held: HeldWriter
) -> None:
    store = service.app.store
    first, others = uuid4(), [uuid4() for _ in range(8)]

    def appends() -> list[object]:
        return in_threads(
            lambda: store.insert_events([event(first, 1)]),
            *[
                (lambda o=o: store.insert_events([event(o, 1), event(o, 2)]))  # type: ignore[misc]
                for o in others
            ],
        )

    results: list[list[object]] = []
    runner = threading.Thread(target=lambda: results.append(appends()))
    runner.start()
    held.wait_queued(len(others))
    held.release()
    runner.join(timeout=60)

    assert [len(group) for group in held.groups] == [1, len(others)]
    stored = stored_positions(service, [first, *others])
    [answers] = results
    assert answers[0] == [stored[(first, 1)]]
    for originator, ids in zip(others, answers[1:], strict=True):
        assert ids == [stored[(originator, 1)], stored[(originator, 2)]]
    positions = sorted(stored.values())
    assert positions == sorted(set(positions))


def test_a_conflict_fails_only_its_own_append_never_its_group_mates(
    service: Service, held: HeldWriter
) -> None:
    store = service.app.store
    taken, fresh = uuid4(), [uuid4() for _ in range(4)]
    blocker = uuid4()
    store.use_group_commit(False)
    store.insert_events([event(taken, 1)])  # the version the loser will claim again
    store.group_commit = held.commit

    results: list[list[object]] = []

    def appends() -> None:
        results.append(
            in_threads(
                lambda: store.insert_events([event(fresh[0], 1)]),
                lambda: store.insert_events([event(fresh[1], 1)]),
                lambda: store.insert_events([event(fresh[2], 1), event(taken, 1)]),
                lambda: store.insert_events([event(fresh[3], 1)]),
            )
        )

    runner = threading.Thread(target=appends)
    hold = threading.Thread(target=lambda: store.insert_events([event(blocker, 1)]))
    hold.start()
    held.holding.wait(timeout=60)
    runner.start()
    held.wait_queued(4)
    held.release()
    runner.join(timeout=60)
    hold.join(timeout=60)

    [answers] = results
    assert [len(group) for group in held.groups] == [1, 4]
    assert isinstance(answers[2], IntegrityError)
    stored = stored_positions(service, [*fresh, taken])
    assert (fresh[2], 1) not in stored  # the loser's other event is not stored either
    for i in (0, 1, 3):
        assert answers[i] == [stored[(fresh[i], 1)]]


def test_two_appends_of_one_group_claiming_one_version_leave_one_winner(
    service: Service, held: HeldWriter
) -> None:
    store = service.app.store
    contested, blocker = uuid4(), uuid4()
    hold = threading.Thread(target=lambda: store.insert_events([event(blocker, 1)]))
    hold.start()
    held.holding.wait(timeout=60)
    results: list[list[object]] = []
    runner = threading.Thread(
        target=lambda: results.append(
            in_threads(*[lambda: store.insert_events([event(contested, 1)]) for _ in range(3)])
        )
    )
    runner.start()
    held.wait_queued(3)
    held.release()
    runner.join(timeout=60)
    hold.join(timeout=60)

    [answers] = results
    assert [len(group) for group in held.groups] == [1, 1]  # the losers never reached Postgres
    won = [a for a in answers if isinstance(a, list)]
    assert len(won) == 1
    assert sum(isinstance(a, IntegrityError) for a in answers) == 2
    assert won[0] == [stored_positions(service, [contested])[(contested, 1)]]


def test_with_group_commit_off_every_save_is_its_own_transaction(service: Service) -> None:
    store = service.app.store
    store.use_group_commit(False)
    try:
        assert store.group_commit is None
        assert list(store.insert_events([event(uuid4(), 1)]) or []) > [0]
    finally:
        store.use_group_commit(True)
