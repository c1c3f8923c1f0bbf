"""IssueKeys through a real server process over a real channel."""

from __future__ import annotations

import re
from collections.abc import Callable

import grpc
import psycopg
import pytest

from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import count_events, rich, unique
from tests.support import Client, FakeClock

FORM = re.compile(r"INT-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}")


def test_ten_thousand_keys_are_issued_in_one_call_and_the_same_request_id_mints_nothing_more(
    client: Client, sql: psycopg.Connection
) -> None:
    request_id = unique("big")
    before = count_events(sql)
    first = client.issue(10_000, request_id=request_id)
    assert count_events(sql) == before + 10_000
    assert len(first.keys) == 10_000 and not first.replayed
    assert len({k.code for k in first.keys}) == len({k.key_id for k in first.keys}) == 10_000
    assert all(FORM.fullmatch(k.code) for k in first.keys)
    assert all(k.hint == f"INT-••••-••••-{k.code[-4:]}" for k in first.keys)

    again = client.issue(10_000, request_id=request_id)
    assert count_events(sql) == before + 10_000
    assert again.replayed
    assert [(k.key_id, k.code) for k in again.keys] == [(k.key_id, k.code) for k in first.keys]
    assert (again.batch_id, again.position) == (first.batch_id, first.position)


@pytest.mark.parametrize(
    "changed",
    [{"tier": pb.TIER_SCALE}, {"seats": 9}, {"period_months": 24}],
    ids=["tier", "seats", "period"],
)
def test_a_request_id_reused_with_other_parameters_is_refused(
    client: Client, sql: psycopg.Connection, changed: dict[str, int]
) -> None:
    request_id = unique("req")
    client.issue(2, request_id=request_id)
    before = count_events(sql)
    with pytest.raises(grpc.RpcError) as refused:
        client.issue(2, "acme", request_id=request_id, **changed)
    error = rich(refused.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert count_events(sql) == before


def test_a_malformed_issue_request_names_every_bad_field(
    client: Client, sql: psycopg.Connection
) -> None:
    before = count_events(sql)
    with pytest.raises(grpc.RpcError) as refused:
        client.issue(10_001, seats=0, period_months=61, tier=pb.TIER_UNSPECIFIED)
    error = rich(refused.value)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(error.violations) == {"count", "seats", "period_months", "tier"}
    assert count_events(sql) == before


def test_keys_of_a_product_without_a_catalog_are_refused(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        client.issue(1, product=pb.PRODUCT_CLOUD_POS)
    error = rich(refused.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PRODUCT_NOT_SUPPORTED")


def test_a_request_id_replayed_after_its_window_is_expired_and_mints_nothing(
    make_service: Callable[..., Service],
    serve_in_process: Callable[[Service], Client],
    sql: psycopg.Connection,
) -> None:
    clock = FakeClock()
    client = serve_in_process(make_service(clock))  # LICENSE_SVC_ISSUE_REPLAY_HOURS: 72
    request_id = unique("late")
    first = client.issue(2, request_id=request_id)
    clock.advance(hours=71)
    assert [k.code for k in client.issue(2, request_id=request_id).keys] == [
        k.code for k in first.keys
    ]
    clock.advance(hours=1, seconds=1)
    before = count_events(sql)
    with pytest.raises(grpc.RpcError) as refused:
        client.issue(2, request_id=request_id)
    error = rich(refused.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_EXPIRED")
    assert "codes" in error.message
    assert count_events(sql) == before
