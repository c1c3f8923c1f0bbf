"""Which generation of each view readers use, and the atomic switch to a rebuilt one.

`view_generations(name, live, building)`: readers answer from generation `live`; a rebuild
fills `building`. The switch is one transaction that
  1. locks the row and the live generation's tracking table (EXCLUSIVE: readers go on, the
     live worker's next commit waits), so the live position stops moving;
  2. waits until the new generation has reached that position (its runner keeps going);
  3. sets `live` and NOTIFYs `live:{name}:{generation}`, so servers re-point at commit.
A reader therefore never sees a position go backwards across the switch.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from .base import APP_NAME, CHANNEL, View, ddl_lock

TABLE = "view_generations"


class Generations:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self._table = Identifier(datastore.schema, TABLE)

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn, ddl_lock(conn):
            conn.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY,"
                    " live integer NOT NULL, building integer, switched_at timestamptz)"
                ).format(self._table)
            )

    def live(self, names: list[str]) -> dict[str, int]:
        """The live generation of each view (1 for a view never seen before)."""
        with self.datastore.get_connection() as conn:
            return live_generations(conn, self._table, names)

    def live_on(self, conn: Any, name: str) -> int:
        """The live generation of one view, read on a connection of the caller's."""
        return live_generations(conn, self._table, [name])[name]

    def begin_rebuild(self, name: str) -> tuple[int, int]:
        """(live, new): the generation to build is one above any generation used so far."""
        with self.datastore.get_connection() as conn:
            live_generations(conn, self._table, [name])
            row = conn.execute(
                SQL(
                    "UPDATE {} SET building = greatest(live, coalesce(building, 0)) + 1"
                    " WHERE name = %s RETURNING live, building"
                ).format(self._table),
                (name,),
            ).fetchone()
        assert row is not None
        return int(row["live"]), int(row["building"])

    def generations_on_disk(self, name: str) -> set[int]:
        """Generations of `name` that have a tracking table (finished, live or abandoned)."""
        pattern = re.compile(rf"^{re.escape(name)}_g(\d+)_tracking$")
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
                (self.datastore.schema, f"{name}_g%_tracking"),
            ).fetchall()
        return {int(m.group(1)) for r in rows if (m := pattern.match(r["tablename"]))}

    def switch(self, name: str, old: View, new: View, timeout: float) -> bool:
        """Make `new` live once it has caught up with `old`; False if it did not in time."""
        with self.datastore.get_connection() as conn, conn.transaction():
            conn.execute(
                SQL("SET LOCAL lock_timeout = '{}s'").format(int(max(1, timeout)))  # type: ignore[arg-type]
            )
            row = conn.execute(
                SQL("SELECT live FROM {} WHERE name = %s FOR UPDATE").format(self._table), (name,)
            ).fetchone()
            if row is None or row["live"] != old.generation:
                raise RuntimeError(f"{name}: generation {old.generation} is no longer live")
            conn.execute(SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(old.tracking))
            target = _position(conn, old)
            deadline = time.monotonic() + timeout
            # Poll inside the transaction: each statement is a fresh read-committed snapshot,
            # and frequent statements keep the session clear of idle-in-transaction timeouts.
            while _position(conn, new) < target:
                if time.monotonic() > deadline:
                    conn.rollback()
                    return False
                time.sleep(0.01)
            conn.execute(
                SQL(
                    "UPDATE {} SET live = %s, building = NULL, switched_at = now() WHERE name = %s"
                ).format(self._table),
                (new.generation, name),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"live:{name}:{new.generation}"))
        return True

    def abandon_rebuild(self, name: str) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute(
                SQL("UPDATE {} SET building = NULL WHERE name = %s").format(self._table), (name,)
            )


def live_generations(conn: Any, table: Identifier, names: list[str]) -> dict[str, int]:
    select = SQL("SELECT name, live FROM {} WHERE name = ANY(%s)").format(table)
    found = {r["name"]: int(r["live"]) for r in conn.execute(select, (names,)).fetchall()}
    missing = [name for name in names if name not in found]
    if missing:
        conn.execute(
            SQL(
                "INSERT INTO {} (name, live) SELECT unnest(%s::text[]), 1"
                " ON CONFLICT (name) DO NOTHING"
            ).format(table),
            (missing,),
        )
        found = {r["name"]: int(r["live"]) for r in conn.execute(select, (names,)).fetchall()}
    return found


def _position(conn: Any, view: View) -> int:
    row = conn.execute(
        SQL(
            "SELECT coalesce(max(notification_id), 0) AS p FROM {} WHERE application_name = %s"
        ).format(view.tracking),
        (APP_NAME,),
    ).fetchone()
    return int(row["p"])


@contextmanager
def advisory_lock(conn: Any, key: int) -> Iterator[bool]:
    """Try a session-level advisory lock on `conn` (rows as dicts); yields whether it was taken."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s) AS taken", (key,)).fetchone()
    taken = bool(row["taken"])
    try:
        yield taken
    finally:
        if taken and not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def differences(
    conn: psycopg.Connection[Any], view: type[View], one: int, other: int
) -> dict[str, int]:
    """Rows of each of `view`'s tables present in generation `one` and not in `other`, or the
    other way round (a rebuild compared with the live copy; {} when they hold the same)."""
    found: dict[str, int] = {}
    for suffix in view.tables:
        a = Identifier(f"{view.name}_g{one}_{suffix}")
        b = Identifier(f"{view.name}_g{other}_{suffix}")
        row = conn.execute(
            SQL(
                "SELECT (SELECT count(*) FROM (TABLE {a} EXCEPT ALL TABLE {b}) x)"
                " + (SELECT count(*) FROM (TABLE {b} EXCEPT ALL TABLE {a}) y)"
            ).format(a=a, b=b)
        ).fetchone()
        if row and int(row[0]):
            found[suffix] = int(row[0])
    return found
