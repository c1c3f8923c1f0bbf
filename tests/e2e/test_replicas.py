"""Two server processes on one database share the failed-attempt counters (rules §4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from license_svc.domain import codes
from tests.helpers import rich, unique
from tests.support import Client, ServerProcess


@pytest.fixture
def second_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(database_url, tmp_path / "second.log")
    yield process
    process.stop()


def test_five_failures_on_one_server_block_the_session_on_the_other(
    client: Client, second_server: ServerProcess
) -> None:
    good = client.issue(1).keys[0].code
    account, session = unique("acct"), unique("sess")
    for _ in range(5):
        with pytest.raises(grpc.RpcError) as failure:
            client.activate(codes.generate("INT").text(), account, session)
        assert rich(failure.value).reason == "KEY_NOT_AVAILABLE"
    for either in (second_server.client, client):
        with pytest.raises(grpc.RpcError) as blocked:
            either.activate(good, account, session)
        error = rich(blocked.value)
        assert (error.code, error.reason) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "TOO_MANY_ATTEMPTS",
        )
    # The other server serves every other session as usual.
    answer = second_server.client.activate(good, account, unique("sess"))
    assert answer.entitlement.account_id == account


def test_failures_split_across_two_servers_add_up(
    client: Client, second_server: ServerProcess
) -> None:
    good = client.issue(1).keys[0].code
    account, session = unique("acct"), unique("sess")
    for i in range(5):
        either = (client, second_server.client)[i % 2]
        with pytest.raises(grpc.RpcError):
            either.validate("INT-NOPE", account, session)
    with pytest.raises(grpc.RpcError) as blocked:
        second_server.client.validate(good, account, session)
    assert rich(blocked.value).reason == "TOO_MANY_ATTEMPTS"
