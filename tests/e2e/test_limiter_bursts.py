"""A hundred guesses fired at once never get one attempt past the limit (rules §4, issue 7).

Real server processes on one database; every burst is 100 concurrent calls (gRPC futures,
spread over the replicas in turn), each guessing a well-formed code that was never issued.
One session: exactly 5 are tried (KEY_NOT_AVAILABLE), the rest are TOO_MANY_ATTEMPTS. A new
session per guess: exactly 20 per account. On one replica, on two, and on two whose clocks are
4 s apart (each 2 s off the true time, through the test-only LICENSE_SVC_CLOCK_OFFSET_SECONDS).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest

from license_svc.domain import codes
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich, unique
from tests.support import Client, ServerProcess


class ShiftedServer(ServerProcess):
    module = "tests.offset_cli"  # the only launcher that honours the test clock offset


GUESSES = 100
TRIALS = 10
SESSION_LIMIT, ACCOUNT_LIMIT = 5, 20


@pytest.fixture(scope="module")
def replicas(
    server: ServerProcess, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, list[Client]]]:
    logs = tmp_path_factory.mktemp("bursts")
    started: list[ServerProcess] = []

    def replica(name: str, offset: float) -> Client:
        log = Path(logs / f"{name}.log")
        process = ShiftedServer(
            database_url,
            log,
            LICENSE_SVC_CLOCK_OFFSET_SECONDS=str(offset),
            LICENSE_SVC_MAX_CLOCK_OFFSET_MS="5000",  # serving although 2 s off: the limiter's case
        )
        started.append(process)
        return process.client

    try:
        second = replica("second", 0)
        yield {
            "one replica": [server.client],
            "two replicas": [server.client, second],
            "two replicas 4 s apart": [replica("ahead", 2.0), replica("behind", -2.0)],
        }
    finally:
        for process in started:
            process.stop()


def burst(clients: list[Client], account: str, session_per_guess: bool) -> Counter[str]:
    """Fire every guess before waiting for any answer; tally the answers' reasons."""
    calls = []
    for i in range(GUESSES):
        client = clients[i % len(clients)]
        session = f"{account}-s{i}" if session_per_guess else f"{account}-s"
        code, product = codes.generate("INT").text(), pb.PRODUCT_INTEGRATIONS
        call: Any
        if i % 2:
            request: Any = pb.ActivateKeyRequest(
                code=code, account_id=account, session_id=session, product=product
            )
            call = client.activation.ActivateKey
        else:
            request = pb.ValidateKeyRequest(
                code=code, account_id=account, session_id=session, product=product
            )
            call = client.activation.ValidateKey
        calls.append(call.future(request, metadata=Client.as_("portal"), timeout=60))
    tally: Counter[str] = Counter()
    for call in calls:
        try:
            call.result()
            tally["OK"] += 1
        except grpc.RpcError as error:
            tally[rich(error).reason] += 1
    return tally


@pytest.mark.slow
@pytest.mark.parametrize("session_per_guess", [False, True], ids=["one session", "session each"])
@pytest.mark.parametrize("setup", ["one replica", "two replicas", "two replicas 4 s apart"])
def test_a_burst_of_guesses_gets_exactly_the_limit_tried_in_every_trial(
    replicas: dict[str, list[Client]],
    sql: psycopg.Connection,
    setup: str,
    session_per_guess: bool,
) -> None:
    limit = ACCOUNT_LIMIT if session_per_guess else SESSION_LIMIT
    expected = {"KEY_NOT_AVAILABLE": limit, "TOO_MANY_ATTEMPTS": GUESSES - limit}
    for _ in range(TRIALS):
        account = unique("burst")
        assert burst(replicas[setup], account, session_per_guess) == expected
        stored = sql.execute(
            "SELECT reason, count(*) FROM failed_attempts WHERE account_id = %s GROUP BY reason",
            (account,),
        ).fetchall()
        assert dict(stored) == {"KEY_NOT_AVAILABLE": limit}  # no reservation left behind
