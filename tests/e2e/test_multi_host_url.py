"""A multi-host database URL with `target_session_attrs=read-write`, the standby named first:
every connection a server and a worker open — the library's pools, the store's follower, the
LISTEN connection, the health check, the limiter, the metrics — lands on the primary, and none
on the standby (where a write would answer `cannot execute ... during recovery`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.replication import Cluster
from tests.helpers import unique
from tests.support import ServerProcess, WorkerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    cluster = Cluster.temporary()
    try:
        cluster.create(synchronous=False)  # which server a connection lands on is the point
        yield cluster
    finally:
        cluster.close()


def standby_first(cluster: Cluster) -> str:
    hosts = f"127.0.0.1:{cluster.standby.port},127.0.0.1:{cluster.primary.port}"
    return f"postgresql://postgres@{hosts}/{cluster.dbname}?target_session_attrs=read-write"


def client_backends(cluster: Cluster, on_primary: bool) -> int:
    node = cluster.primary if on_primary else cluster.standby
    rows = node.execute(
        "SELECT count(*) FROM pg_stat_activity"
        f" WHERE datname = '{cluster.dbname}' AND backend_type = 'client backend'"
        " AND pid <> pg_backend_pid()"
    )
    return int(rows[0][0])


def test_every_connection_of_a_server_and_a_worker_lands_on_the_primary(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = standby_first(cluster)
    server = ServerProcess(url, tmp_path / "server.log")
    worker = WorkerProcess(url, tmp_path / "worker.log")
    try:
        client = server.client
        account = unique("acct")
        key = client.issue(1).keys[0]
        client.activate(key.code, account)
        client.validate(key.code, account)

        assert client_backends(cluster, on_primary=True) > 0
        assert client_backends(cluster, on_primary=False) == 0
        for process in (server, worker):
            assert "during recovery" not in process.log_text()
            assert "read-only transaction" not in process.log_text()
    finally:
        worker.stop()
        server.stop()
