"""The store's one-round-trip append (`LicensingRecorder.insert_events`) against real Postgres:
it returns the ids it stored, a conflicting append is the library's IntegrityError and leaves
the pool usable, ids stay in commit order across concurrent writers, it NOTIFYs its channel,
and a large append goes through (the Unix-socket flush).

Synthetic events go to a table of their own, so no projection ever reads them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.pq import TransactionStatus
from psycopg.sql import SQL, Identifier

from license_svc.adapters.eventstore import LicensingRecorder
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from tests.helpers import unique
from tests.support import FakeClock

TABLE = "store_insert_test_events"
TOPIC = "tests.integration.test_store_insert:Appended"


@pytest.fixture
def recorder(service: Service) -> Iterator[LicensingRecorder]:
    recorder = LicensingRecorder(service.datastore, events_table_name=TABLE)
    # The recorder's own tables and index; not its composite type (the application made it)
    # nor its insert function (shared by name with the application's table, and left off).
    with service.datastore.transaction(commit=True) as curs:
        for statement in recorder.sql_create_statements:
            text = statement.as_string()
            if "CREATE TYPE" not in text and "FUNCTION" not in text:
                curs.execute(statement, prepare=False)
    yield recorder


def event(originator_id: uuid.UUID, version: int, state: bytes = b"{}") -> StoredEvent:
    return StoredEvent(originator_id, version, TOPIC, state)


def stored_ids(sql: psycopg.Connection, originator_id: uuid.UUID) -> list[int]:
    rows = sql.execute(
        SQL(
            "SELECT notification_id FROM {} WHERE originator_id = %s ORDER BY originator_version"
        ).format(Identifier(TABLE)),
        (originator_id,),
    ).fetchall()
    return [int(row[0]) for row in rows]


def assert_pool_clean(recorder: LicensingRecorder) -> None:
    pool = recorder.datastore.pool
    for _ in range(pool.max_size + 1):
        with recorder.datastore.get_connection() as conn:
            assert conn.info.transaction_status == TransactionStatus.IDLE


def test_the_returned_positions_are_the_stored_notification_ids(
    recorder: LicensingRecorder, sql: psycopg.Connection
) -> None:
    key = uuid.uuid4()
    first = recorder.insert_events([event(key, 1)])
    rest = recorder.insert_events([event(key, 2), event(key, 3), event(key, 4)])
    assert first is not None and rest is not None
    assert [*first, *rest] == stored_ids(sql, key)
    assert rest[0] > first[0] and list(rest) == list(range(rest[0], rest[0] + 3))
    assert [p.position for p in recorder.positioned_events(key)] == [*first, *rest]
    assert recorder.select_events(key) == [event(key, v) for v in (1, 2, 3, 4)]


def test_a_conflicting_append_raises_integrity_error_and_leaves_the_pool_usable(
    recorder: LicensingRecorder, sql: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each connection's state as the store hands it back (the pool would quietly roll back a
    # connection left in a failed transaction: the store must not rely on it).
    handed_back: list[TransactionStatus] = []
    get_connection = recorder.datastore.get_connection

    @contextmanager
    def watched() -> Iterator[psycopg.Connection[Any]]:
        with get_connection() as conn:
            try:
                yield conn
            finally:
                handed_back.append(conn.info.transaction_status)

    monkeypatch.setattr(recorder.datastore, "get_connection", watched)
    key = uuid.uuid4()
    (position,) = recorder.insert_events([event(key, 1)]) or ()
    # More conflicts than the pool has connections: each must hand its connection back clean.
    for _ in range(recorder.datastore.pool.max_size + 2):
        with pytest.raises(IntegrityError):
            recorder.insert_events([event(key, 1, b'{"again": true}')])
        with pytest.raises(IntegrityError):  # all or nothing: version 2 is not kept either
            recorder.insert_events([event(key, 2), event(key, 1)])
    assert_pool_clean(recorder)
    assert len(handed_back) > 2 * recorder.datastore.pool.max_size
    assert set(handed_back) == {TransactionStatus.IDLE}
    assert stored_ids(sql, key) == [position]
    # The table lock went with the failed transactions: the next append is not blocked.
    sql.execute("SET lock_timeout = '5s'")
    later = recorder.insert_events([event(key, 2)])
    assert later is not None and stored_ids(sql, key) == [position, later[0]]
    assert recorder.select_events(key) == [event(key, 1), event(key, 2)]


def test_two_copies_of_a_key_saved_the_second_is_refused_with_integrity_error(
    service: Service, clock: FakeClock
) -> None:
    """What `LicensingApp.activate` retries on, through the real application and event store:
    the losing save is the library's IntegrityError, and the app can save again at once."""
    app = service.app
    batch = app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.SCALE, 5, 1, 1, unique("req"))
    )
    key_id = batch.keys[0].key_id
    first, second = app.get_key(key_id), app.get_key(key_id)
    assert first.activate("acct-1", clock()) and second.activate("acct-2", clock())
    (recording,) = app.save(first)
    with pytest.raises(IntegrityError):
        app.save(second)
    assert app.store.position_of(key_id, 2) == recording.notification.id
    assert_pool_clean(app.store)
    assert app.activate(key_id, "acct-1").already_active


def test_ids_are_in_commit_order_across_concurrent_writers(
    recorder: LicensingRecorder, database_url: str
) -> None:
    """A reader that sees id n has already seen every id below n that will ever be stored,
    however the writers interleave: the lock makes id order the commit order."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(Identifier(TABLE))
        ).fetchone()
    assert row is not None
    start = int(row[0])
    writers, appends = 8, 25
    barrier = threading.Barrier(writers + 1)
    done = threading.Event()
    returned: list[list[int]] = []
    snapshots: list[list[int]] = []
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            key = uuid.uuid4()
            barrier.wait()
            for version in range(1, appends + 1):
                # Some appends carry two events: both ids must be consecutive.
                batch = [event(key, version * 2 - 1), event(key, version * 2)]
                ids = recorder.insert_events(batch[: 1 + (version + index) % 2])
                assert ids is not None
                returned.append(list(ids))
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                barrier.wait()
                query = SQL(
                    "SELECT notification_id FROM {} WHERE notification_id > %s"
                    " ORDER BY notification_id"
                ).format(Identifier(TABLE))
                while not done.is_set():
                    snapshots.append([int(r[0]) for r in conn.execute(query, (start,))])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    reader = threading.Thread(target=read)
    for thread in [reader, *threads]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    assert not errors, errors

    with psycopg.connect(database_url, autocommit=True) as conn:
        final = [
            int(r[0])
            for r in conn.execute(
                SQL(
                    "SELECT notification_id FROM {} WHERE notification_id > %s"
                    " ORDER BY notification_id"
                ).format(Identifier(TABLE)),
                (start,),
            )
        ]
    # Every id returned was stored, and each append's ids are consecutive.
    assert sorted(i for ids in returned for i in ids) == final
    for ids in returned:
        assert ids == list(range(ids[0], ids[0] + len(ids)))
    # No reader ever saw an id before a lower one that was committed later.
    assert len(snapshots) > 1
    for seen in snapshots:
        if seen:
            assert seen == [i for i in final if i <= seen[-1]]
    assert_pool_clean(recorder)


def test_an_append_notifies_its_channel(
    recorder: LicensingRecorder, sql: psycopg.Connection
) -> None:
    sql.execute(SQL("LISTEN {}").format(Identifier(recorder.channel_name)))
    recorder.insert_events([event(uuid.uuid4(), 1)])
    received = list(sql.notifies(timeout=5, stop_after=1))
    assert [n.channel for n in received] == [recorder.channel_name]


def test_a_failed_append_notifies_nobody(
    recorder: LicensingRecorder, sql: psycopg.Connection
) -> None:
    key = uuid.uuid4()
    recorder.insert_events([event(key, 1)])
    sql.execute(SQL("LISTEN {}").format(Identifier(recorder.channel_name)))
    with pytest.raises(IntegrityError):
        recorder.insert_events([event(key, 1)])
    assert list(sql.notifies(timeout=0.5, stop_after=1)) == []


def test_a_large_append_goes_through_whole(
    recorder: LicensingRecorder, sql: psycopg.Connection
) -> None:
    """Megabytes in one message: over a Unix socket (the embedded database) it outgrows the
    socket buffer, which the store's flush before the sync takes care of."""
    key = uuid.uuid4()
    events = [event(key, v, bytes([v % 256]) * 400) for v in range(1, 5_001)]
    ids = recorder.insert_events(events)
    assert ids is not None and list(ids) == stored_ids(sql, key)
    assert len(ids) == 5_000
    assert recorder.select_events(key, gt=4_998) == events[-2:]


def test_notifications_read_as_the_library_reads_them(recorder: LicensingRecorder) -> None:
    """The lean read (binary tuples, statements rendered once) answers every shape of query
    exactly as the library's own `select_notifications`."""
    first = uuid.uuid4()
    ids = recorder.insert_events(
        [event(first, 1, b'{"a":"\\u0000\\u00e9"}'), event(first, 2), event(uuid.uuid4(), 1)]
    )
    assert ids is not None
    a, b, c = ids
    library = PostgresApplicationRecorder.select_notifications
    shapes: list[dict[str, Any]] = [
        {"start": None, "limit": 10},
        {"start": a, "limit": 10},
        {"start": a, "limit": 10, "inclusive_of_start": False},
        {"start": a, "limit": 1},
        {"start": None, "limit": 10, "stop": b},
        {"start": a, "limit": 10, "stop": b, "inclusive_of_start": False},
        {"start": c, "limit": 10, "stop": c},
        {"start": c + 1, "limit": 10},
        {"start": a, "limit": 10, "topics": [TOPIC]},
    ]
    for shape in shapes:
        lean = recorder.select_notifications(**shape)
        assert lean == library(recorder, **shape), shape
        assert all(type(n.state) is bytes and type(n.originator_id) is uuid.UUID for n in lean)
        assert all(vars(n).keys() == {f.name for f in fields(Notification)} for n in lean)
    assert [n.id for n in recorder.select_notifications(start=a, limit=10)] == [a, b, c]
