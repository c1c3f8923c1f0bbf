"""IssueKeys against real Postgres: one transaction per batch, idempotent by request_id."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import psycopg
import pytest

from license_svc.bootstrap import Service
from license_svc.domain import codes
from license_svc.domain.key import KeyStatus
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import (
    IssuedBatch,
    IssueKeys,
    RequestIdExpired,
    RequestIdReused,
    UnsupportedProduct,
)
from tests.helpers import count_events, stored_topics, unique
from tests.support import FakeClock


def command(count: int = 5, **changes: object) -> IssueKeys:
    cmd = IssueKeys("acme", Product.INTEGRATIONS, Tier.GROWTH, 3, 12, count, unique("req"))
    return replace(cmd, **changes)  # type: ignore[arg-type]


def codes_of(batch: IssuedBatch) -> list[tuple[str, str]]:
    return [(str(k.key_id), k.code) for k in batch.keys]


def test_issued_keys_are_stored_and_found_by_their_code(
    service: Service, sql: psycopg.Connection
) -> None:
    before = count_events(sql)
    batch = service.app.issue_keys(command(count=5))
    assert count_events(sql) == before + 5
    assert len({k.code for k in batch.keys}) == 5
    for issued in batch.keys:
        parsed = codes.parse(issued.code)
        assert issued.hint == codes.hint(parsed)
        assert service.app.key_id_of(parsed) == issued.key_id
        key = service.app.get_key(issued.key_id)
        assert (key.status, key.reseller_id, key.batch_id) == (
            KeyStatus.ISSUED,
            "acme",
            str(batch.batch_id),
        )
        assert stored_topics(sql, issued.key_id) == ["KeyIssued"]
    last = batch.keys[-1].key_id
    assert batch.position == service.app.store.position_of(last, 1)


def test_the_same_request_id_returns_the_same_keys_in_order_and_appends_nothing(
    service: Service, sql: psycopg.Connection
) -> None:
    cmd = command(count=20)
    first = service.app.issue_keys(cmd)
    before = count_events(sql)
    again = service.app.issue_keys(cmd)
    assert count_events(sql) == before
    assert codes_of(again) == codes_of(first)
    assert (again.batch_id, again.position) == (first.batch_id, first.position)
    assert (first.replayed, again.replayed) == (False, True)


@pytest.mark.parametrize(
    "changed",
    [{"tier": Tier.SCALE}, {"seats": 4}, {"period_months": 6}, {"count": 21}],
    ids=["tier", "seats", "period", "count"],
)
def test_a_request_id_reused_with_other_parameters_is_refused(
    service: Service, sql: psycopg.Connection, changed: dict[str, object]
) -> None:
    cmd = command(count=20)
    service.app.issue_keys(cmd)
    before = count_events(sql)
    with pytest.raises(RequestIdReused):
        service.app.issue_keys(replace(cmd, **changed))  # type: ignore[arg-type]
    assert count_events(sql) == before


def test_the_same_request_id_of_another_reseller_is_another_batch(service: Service) -> None:
    cmd = command(count=3)
    acme = service.app.issue_keys(cmd)
    globex = service.app.issue_keys(replace(cmd, reseller_id="globex"))
    assert not globex.replayed
    assert globex.batch_id != acme.batch_id
    assert not {k.code for k in globex.keys} & {k.code for k in acme.keys}


def test_requests_without_a_request_id_mint_new_keys_each_time(service: Service) -> None:
    cmd = command(count=3, request_id="")
    first, second = service.app.issue_keys(cmd), service.app.issue_keys(cmd)
    assert first.batch_id != second.batch_id
    assert not {k.code for k in first.keys} & {k.code for k in second.keys}


def test_concurrent_copies_of_one_request_mint_one_batch(
    service: Service, sql: psycopg.Connection
) -> None:
    cmd, copies = command(count=200), 6
    before = count_events(sql)
    start = threading.Barrier(copies)
    answers: list[IssuedBatch] = []
    failures: list[BaseException] = []

    def issue() -> None:
        start.wait()
        try:
            answers.append(service.app.issue_keys(cmd))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=issue) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(answers) == copies
    assert sum(not a.replayed for a in answers) == 1
    assert len({tuple(codes_of(a)) for a in answers}) == 1
    assert len({a.batch_id for a in answers}) == 1
    assert count_events(sql) == before + 200
    rows = sql.execute(
        "SELECT count(*) FROM issue_requests WHERE reseller_id = %s AND request_id = %s",
        (cmd.reseller_id, cmd.request_id),
    ).fetchone()
    assert rows == (1,)


def test_keys_cannot_be_issued_for_a_product_without_a_catalog(
    service: Service, sql: psycopg.Connection
) -> None:
    before = count_events(sql)
    with pytest.raises(UnsupportedProduct):
        service.app.issue_keys(command(product=Product.CLOUD_POS))
    assert count_events(sql) == before


def test_a_request_id_replays_its_codes_until_the_window_ends_then_is_expired_and_mints_nothing(
    make_service: Callable[..., Service], sql: psycopg.Connection
) -> None:
    clock = FakeClock()
    service = make_service(clock, issue_replay_hours=72.0)
    cmd = command(count=3)
    first = service.app.issue_keys(cmd)
    clock.advance(hours=72)
    assert codes_of(service.app.issue_keys(cmd)) == codes_of(first)  # the last instant of it
    clock.advance(seconds=1)
    before = count_events(sql)
    with pytest.raises(RequestIdExpired):
        service.app.issue_keys(cmd)
    with pytest.raises(RequestIdExpired):
        service.app.issue_keys(replace(cmd, seats=4))  # expired before it is compared
    assert count_events(sql) == before
