"""Dropping a view's old generations: after a rebuild's switch, and `license-svc projections prune`.

A generation other than the live one (the one a rebuild replaced, or an abandoned rebuild's) is
dropped once nothing uses it:
- no worker runs it: its worker lock is taken here, and held while its tables are dropped, so
  no worker can start on it meanwhile;
- no read is in it: DROP TABLE waits for the ACCESS EXCLUSIVE lock, which every transaction
  still reading the tables holds off. Servers re-point at the switch's notice, so only a read
  already under way (or a server that missed the notice, and re-reads the live generation when
  it finds the table gone) stands in the way; the wait is bounded by a lock timeout, so a long
  read makes prune give up on that generation for now instead of queueing every reader behind
  its DROP. The generation is then simply kept, and dropped by a later prune.
- no rebuild is filling it: the caller holds the view's rebuild lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresDatastore
from psycopg import errors
from psycopg.sql import SQL, Identifier

from license_svc.config import Settings
from projections.base import DDL_LOCK
from projections.generations import Generations, advisory_lock
from projections.registry import view_class

from .runner import worker_lock_key

RETRY_SECONDS = 0.25


@dataclass
class Pruned:
    name: str
    dropped: list[int] = field(default_factory=list)
    kept: dict[int, str] = field(default_factory=dict)  # generation → why it is still there

    def summary(self) -> str:
        parts = [f"dropped generation {g}" for g in self.dropped]
        parts += [f"kept generation {g} ({why})" for g, why in sorted(self.kept.items())]
        return f"{self.name}: " + ("; ".join(parts) if parts else "nothing to drop")


def prune(
    conn: psycopg.Connection[Any],
    settings: Settings,
    datastore: PostgresDatastore,
    name: str,
    wait: float = 0.0,
) -> Pruned:
    """Drop every generation of `name` but the live one that nothing uses, trying for up to
    `wait` seconds (a worker leaves a switched generation within its poll interval). The
    caller holds the rebuild lock of `name` on `conn` (no rebuild is filling a generation)."""
    generations = Generations(datastore)
    live = generations.live_on(conn, name)
    result = Pruned(name)
    pending = sorted(generations.generations_on_disk(name) - {live})
    deadline = time.monotonic() + wait
    while pending:
        for generation in list(pending):
            why = _drop(conn, settings, datastore, name, generation)
            if why is None:
                result.dropped.append(generation)
                result.kept.pop(generation, None)
                pending.remove(generation)
            else:
                result.kept[generation] = why
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(RETRY_SECONDS)
    return result


def _drop(
    conn: psycopg.Connection[Any],
    settings: Settings,
    datastore: PostgresDatastore,
    name: str,
    generation: int,
) -> str | None:
    """Drop one generation's tables; None when dropped, else why not."""
    view = view_class(name).at(datastore, generation)
    tables = [
        Identifier(datastore.schema, t) for t in [*view.table_names(), view.tracking_table_name]
    ]
    with advisory_lock(conn, worker_lock_key(name, generation)) as mine:
        if not mine:
            return "a worker still runs it"
        try:
            with conn.transaction():
                timeout = max(1, int(settings.lock_timeout))
                conn.execute(SQL("SET LOCAL lock_timeout = '{}s'").format(timeout))  # type: ignore[arg-type]
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
                conn.execute(SQL("DROP TABLE IF EXISTS {}").format(SQL(", ").join(tables)))
        except errors.LockNotAvailable:
            return "a read still uses it"
    return None
