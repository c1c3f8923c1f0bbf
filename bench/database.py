"""The bench's own database: created fresh on the test PostgreSQL server, dropped afterwards.

The server is the one named by LICENSE_SVC_TEST_DATABASE_URL, else an embedded PostgreSQL
started for this run (its data folder is deleted when the run ends).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

log = logging.getLogger("bench.database")


def server_url() -> str:
    url = os.environ.get("LICENSE_SVC_TEST_DATABASE_URL", "")
    if url:
        return url
    from license_svc.adapters import embedded as embedded_db

    folder = Path(tempfile.mkdtemp(prefix="license-svc-bench-"))
    atexit.register(shutil.rmtree, folder, True)  # runs after the embedded server's own cleanup
    log.info("LICENSE_SVC_TEST_DATABASE_URL is unset: starting an embedded PostgreSQL")
    return embedded_db.start(folder / "pg", keep=False)


@contextmanager
def fresh_database(base_url: str) -> Iterator[str]:
    """Create `license_svc_bench_<timestamp>` on base_url's server; yield its URL; drop it."""
    name = f"license_svc_bench_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    log.info("created database %s", name)
    try:
        yield make_conninfo(base_url, dbname=name)
    finally:
        try:
            with psycopg.connect(base_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            log.info("dropped database %s", name)
        except psycopg.Error as error:  # the server went first (a signal to the whole group)
            log.warning("could not drop database %s: %s", name, error)


def count_events(url: str) -> int:
    """Rows in the event store (0 before the application created its table)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('public.licensing_events') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        counted = conn.execute("SELECT count(*) FROM public.licensing_events").fetchone()
        return int(counted[0]) if counted else 0
