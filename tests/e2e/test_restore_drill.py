"""The restore drill: a base backup and the archived WAL restored to a point in time T hold
exactly the events committed up to T, and the views rebuilt from them equal the views the
worker builds from the same events (docs/operations.md, "Backups and restore")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.chaos import _rebuild_and_compare, close_connections, wait_views
from bench.chaos_parts import store_facts
from bench.pitr import archive_current_wal, base_backup, restore
from bench.replication import Cluster
from tests.helpers import unique
from tests.support import TEST_PEPPER, Client, ServerProcess, WorkerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    cluster = Cluster.temporary()
    try:
        cluster.create(synchronous=False, standby=False)  # a primary archiving its WAL
        yield cluster
    finally:
        close_connections()
        cluster.close()


def write_some(client: Client) -> list[str]:
    """Keys issued, one of them activated: the key ids."""
    keys = client.issue(3).keys
    client.activate(keys[0].code, unique("acct"))
    return [key.key_id for key in keys]


def store_head(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(max(notification_id), 0), count(*) FROM licensing_events"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_base_backup_and_the_wal_archive_restore_exactly_the_events_up_to_a_point_in_time(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = cluster.primary.url(cluster.dbname)
    server = ServerProcess(url, tmp_path / "server.log")
    try:
        earliest = write_some(server.client)
        backup = base_backup(cluster)
        before = earliest + write_some(server.client)  # after the backup: in the archive only
        head_at_t = store_head(url)
        t = cluster.primary.execute("SELECT clock_timestamp()")[0][0]
        after = write_some(server.client)
    finally:
        server.stop()
    archive_current_wal(cluster)

    restore(cluster, backup, t)

    restored = backup.url(cluster.dbname)
    assert store_head(restored) == head_at_t
    with psycopg.connect(restored, autocommit=True) as conn:
        assert store_facts(conn, before) == (len(before), [])
        assert store_facts(conn, after) == (0, [])

    worker = WorkerProcess(restored, tmp_path / "worker.log")  # the views catch up to T
    try:
        wait_views(restored, head_at_t[0])
        differences = _rebuild_and_compare(restored, tmp_path, pepper=TEST_PEPPER)
    finally:
        worker.stop()
    assert differences and not any(differences.values())
