"""Rules §12's limit under a burst, across two real server replicas on one database: 100
AcquireSeat calls with distinct connection ids for an account of 5 seats get exactly 5 leases,
the rest NO_SEAT_AVAILABLE with RetryInfo — fired at once, from threads, and with releases among
them. The lease rows show the limit held at every instant."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future

import grpc
import psycopg
import pytest

from tests.e2e.seats_support import (
    account_with_seats,
    acquire_request,
    listed,
    most_live_at_once,
    release,
    seats,
)
from tests.helpers import rich
from tests.support import Client, ServerProcess
from tests.views_support import SMALL_POOLS

pytestmark = pytest.mark.slow
TRIALS = int(os.environ.get("LICENSE_SVC_SEAT_RACE_TRIALS", "20"))
CALLS = 100


@pytest.fixture(scope="module")
def replicas(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Client, Client]]:
    folder = tmp_path_factory.mktemp("seat-race")
    first = ServerProcess(
        database_url, folder / "first.log", LICENSE_SVC_RUN_PROJECTIONS="1", **SMALL_POOLS
    )
    second = ServerProcess(database_url, folder / "second.log", **SMALL_POOLS)
    yield first.client, second.client
    second.stop()
    first.stop()


def outcomes(calls: list[Future[object]]) -> tuple[list[object], list[grpc.RpcError]]:
    granted, refused = [], []
    for call in calls:
        try:
            granted.append(call.result())
        except grpc.RpcError as error:
            refused.append(error)
    return granted, refused


def assert_refused_for_want_of_a_seat(refused: list[grpc.RpcError]) -> None:
    for error in refused:
        found = rich(error)
        assert (found.code, found.reason) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "NO_SEAT_AVAILABLE",
        ), found
        assert found.message == "All 5 seats are in use"
        assert found.retry_delay is not None and found.retry_delay.total_seconds() > 0


def fire_at_once(replicas: tuple[Client, Client], account: str) -> list[Future[object]]:
    """100 acquires, alternating replicas, each sent without waiting for any answer."""
    return [
        seats(client).AcquireSeat.future(
            acquire_request(account), metadata=client.as_("integrations"), timeout=60
        )
        for i in range(CALLS)
        for client in [replicas[i % 2]]
    ]


@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_hundred_acquires_fired_at_once_on_two_replicas_grant_exactly_five_seats(
    replicas: tuple[Client, Client], sql: psycopg.Connection, trial: int
) -> None:
    account, _ = account_with_seats(replicas[0], 5)
    granted, refused = outcomes(fire_at_once(replicas, account))
    assert (len(granted), len(refused)) == (5, 95)
    assert_refused_for_want_of_a_seat(refused)
    shown = {lease.lease_id for lease in listed(replicas[1], account)}
    assert shown == {answer.lease.lease_id for answer in granted}  # type: ignore[attr-defined]
    assert most_live_at_once(sql, account) == 5


def test_a_hundred_acquires_from_ten_threads_per_replica_grant_exactly_five_seats(
    replicas: tuple[Client, Client], sql: psycopg.Connection
) -> None:
    account, _ = account_with_seats(replicas[0], 5)
    start = threading.Barrier(20)
    answers: list[Future[object]] = []
    lock = threading.Lock()

    def thread(client: Client) -> None:
        start.wait()
        for _ in range(CALLS // 20):
            call = seats(client).AcquireSeat.future(
                acquire_request(account), metadata=client.as_("integrations"), timeout=60
            )
            call.exception()  # one after another within the thread
            with lock:
                answers.append(call)

    threads = [threading.Thread(target=thread, args=(replicas[i % 2],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    granted, refused = outcomes(answers)
    assert (len(granted), len(refused)) == (5, 95)
    assert_refused_for_want_of_a_seat(refused)
    assert len(listed(replicas[0], account)) == 5
    assert most_live_at_once(sql, account) == 5


def test_acquires_interleaved_with_releases_never_exceed_five_live_leases(
    replicas: tuple[Client, Client], sql: psycopg.Connection
) -> None:
    account, _ = account_with_seats(replicas[0], 5)
    held, _ = outcomes(fire_at_once(replicas, account))
    assert len(held) == 5
    burst = fire_at_once(replicas, account)
    for answer in held[:3]:  # three seats freed while the burst runs
        assert release(replicas[1], answer.lease.lease_id).released  # type: ignore[attr-defined]
    granted, refused = outcomes(burst)
    assert_refused_for_want_of_a_seat(refused)
    assert len(granted) <= 3
    assert len(listed(replicas[0], account)) == 5 - 3 + len(granted)
    assert most_live_at_once(sql, account) == 5
    # Once the releases are in, the seats they freed are there for the taking: 5 of 5 again.
    refill, _ = outcomes(fire_at_once(replicas, account))
    assert len(granted) + len(refill) == 3
    assert len(listed(replicas[1], account)) == 5
