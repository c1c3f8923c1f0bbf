"""The replication harness the failover drill stands on: a primary and a synchronous standby
made with PostgreSQL's own tools (`bench.replication`), never the shared PostgreSQL.

A write on the primary is read on the standby; the primary is SIGKILLed, the standby promoted
and written to; the old primary is rewound with `pg_rewind` and follows the new one."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from bench.replication import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    cluster = Cluster.temporary()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.close()


def rows(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return [row[0] for row in conn.execute("SELECT x FROM t ORDER BY x")]


def test_the_standby_is_synchronous_and_a_commit_on_the_primary_is_read_on_it(
    cluster: Cluster,
) -> None:
    states = cluster.primary.execute("SELECT sync_state FROM pg_stat_replication")
    assert states == [("sync",)]
    cluster.primary.execute("CREATE TABLE t (x int)", cluster.dbname)
    cluster.primary.execute("INSERT INTO t VALUES (1)", cluster.dbname)
    # Synchronous commit waits for the standby's flush, not its replay: wait for the replay.
    cluster.wait_replayed()
    assert rows(cluster.standby_url()) == [1]
    assert cluster.standby.in_recovery()


def test_the_promoted_standby_takes_writes_and_the_old_primary_rejoins_with_pg_rewind(
    cluster: Cluster,
) -> None:
    cluster.primary.execute("CREATE TABLE t (x int)", cluster.dbname)
    cluster.primary.execute("INSERT INTO t VALUES (1)", cluster.dbname)
    old_primary = cluster.primary

    cluster.kill_primary()
    cluster.promote_standby()

    assert cluster.primary is not old_primary
    assert not cluster.primary.in_recovery()
    # The multi-host URL finds the new primary by itself.
    with psycopg.connect(cluster.url(), autocommit=True, connect_timeout=5) as conn:
        conn.execute("INSERT INTO t VALUES (2)")
        assert conn.info.port == cluster.primary.port

    cluster.rejoin_old_primary()

    assert cluster.standby is old_primary
    assert old_primary.in_recovery()
    states = cluster.primary.execute("SELECT sync_state FROM pg_stat_replication")
    assert states == [("sync",)]  # commits wait for it again
    cluster.primary.execute("INSERT INTO t VALUES (3)", cluster.dbname)
    cluster.wait_replayed()
    assert rows(cluster.standby_url()) == [1, 2, 3]
