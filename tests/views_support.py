"""Helpers for the projection tests: fresh databases, worker processes, comparing generations."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from bench.processes import stop_process
from license_svc import bootstrap, config
from license_svc.bootstrap import Service
from projections import generations
from projections.registry import NAMES, view_class
from tests.support import REPO, TEST_PEPPER, Client, FakeClock, ServerProcess

# Keep test processes small: other suites share the PostgreSQL server's 100 connections.
SMALL_POOLS = {"LICENSE_SVC_POOL_SIZE": "2", "LICENSE_SVC_POOL_MAX_OVERFLOW": "6"}


@contextmanager
def fresh_database(database_url: str) -> Iterator[str]:
    """A database of its own, for tests that compare whole views or replay the whole store."""
    name = f"lsv_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(database_url, dbname=name)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def service_on_fresh_database(database_url: str, var_dir: Path) -> Iterator[Service]:
    """An in-process service (a fake clock) on a database of its own; closed afterwards."""
    with fresh_database(database_url) as url:
        built = bootstrap.build(settings_for(url, var_dir), FakeClock())
        try:
            yield built
        finally:
            built.close()


def settings_for(database_url: str, var_dir: Path, **env: str) -> config.Settings:
    return config.load(
        {
            "LICENSE_SVC_DATABASE_URL": database_url,
            "LICENSE_SVC_PEPPER": TEST_PEPPER,
            "LICENSE_SVC_VAR_DIR": str(var_dir),
            "LICENSE_SVC_TOKENS_FILE": str(config.DEV_TOKENS),
            "LICENSE_SVC_LISTEN": "127.0.0.1:0",
            **env,
        }
    )


def cli_env(database_url: str, **env: str) -> dict[str, str]:
    return {
        **os.environ,
        "LICENSE_SVC_DATABASE_URL": database_url,
        "LICENSE_SVC_PEPPER": TEST_PEPPER,
        "LICENSE_SVC_TOKENS_FILE": str(REPO / "deploy" / "dev" / "tokens.json"),
        **SMALL_POOLS,
        **env,
    }


def start_worker(database_url: str, log_path: Path) -> subprocess.Popen[bytes]:
    """`license-svc project` in a child process."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "license_svc.entrypoints.cli.main", "project"],
            env=cli_env(database_url),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def server_with_worker(database_url: str, folder: Path) -> Iterator[Client]:
    """A `license-svc serve` process whose views are kept by a separate worker process."""
    worker = start_worker(database_url, folder / "worker.log")
    try:
        server = ServerProcess(database_url, folder / "server.log", **SMALL_POOLS)
        try:
            yield server.client
        finally:
            server.stop()
    finally:
        stop(worker)


def stop(process: subprocess.Popen[bytes]) -> None:
    stop_process(process, 30)


def cli(database_url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "license_svc.entrypoints.cli.main", *args],
        env=cli_env(database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Wait for a condition the system reaches by itself (not for time to pass)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {what}")
        time.sleep(0.05)


def head(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM licensing_events").fetchone()
    return int(row[0]) if row else 0


def live_generations(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT name, live FROM view_generations").fetchall()
    return {str(name): int(live) for name, live in rows}


def position(conn: psycopg.Connection, name: str, generation: int) -> int:
    row = conn.execute(
        f"SELECT coalesce(max(notification_id), 0) FROM {name}_g{generation}_tracking"
        " WHERE application_name = 'licensing'"
    ).fetchone()
    return int(row[0]) if row else 0


def all_live_at_head(conn: psycopg.Connection) -> bool:
    live = live_generations(conn)
    target = head(conn)
    return len(live) == len(NAMES) and all(
        position(conn, name, live[name]) >= target for name in NAMES
    )


def differences(conn: psycopg.Connection, name: str, one: int, other: int) -> dict[str, int]:
    """Rows of each table of view `name` present in one generation and not the other."""
    return generations.differences(conn, view_class(name), one, other)


def row_count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
