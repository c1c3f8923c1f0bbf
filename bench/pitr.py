"""A base backup and the WAL archive, restored to a point in time (the restore drill).

`base_backup()` takes a `pg_basebackup` of a `bench.replication` cluster's primary (its WAL is
archived by `archive_command` into the cluster's `wal-archive`); `restore()` starts a new
server from it that replays the archived WAL up to `recovery_target_time` and is then promoted:
what an operator does after losing the database (docs/operations.md, "Backups and restore").
"""

from __future__ import annotations

import os
import time
from datetime import datetime

from bench.replication import Cluster, Node


def base_backup(cluster: Cluster, name: str = "restored") -> Node:
    """A base backup of the primary, in the folder a restored server will run from."""
    node = Node(cluster.root, name)
    source = cluster.primary
    node.tool(
        "pg_basebackup",
        "-h", "127.0.0.1", "-p", str(source.port), "-U", "postgres",
        "-D", str(node.data), "-X", "none", "-c", "fast",
    )  # fmt: skip
    cluster.others.append(node)
    return node


def archive_current_wal(cluster: Cluster, timeout: float = 60) -> None:
    """Close the primary's current WAL segment and wait until the archive holds it."""
    primary = cluster.primary
    segment = primary.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    deadline = time.monotonic() + timeout
    while not (cluster.archive / segment).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{segment} was not archived")
        time.sleep(0.1)


def restore(cluster: Cluster, node: Node, target: datetime, timeout: float = 120) -> None:
    """Start `node` (a base backup) replaying the archive up to `target`, then promoted."""
    node.configure(
        port=str(node.port),
        archive_mode="off",
        synchronous_standby_names="",
        restore_command=f"cp {cluster.archive}/%f %p",
        recovery_target_time=target.isoformat(),
        recovery_target_action="promote",
    )
    signal_file = node.data / "recovery.signal"
    signal_file.touch()
    owner = node.data.stat()
    os.chown(signal_file, owner.st_uid, owner.st_gid)
    node.start()
    deadline = time.monotonic() + timeout
    while node.in_recovery():
        if time.monotonic() > deadline:
            raise TimeoutError("the restored server is still recovering")
        time.sleep(0.1)
