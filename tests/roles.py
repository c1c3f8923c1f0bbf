"""The suite's three-role switch: with LICENSE_SVC_TEST_ROLES=1 every server, worker and
sweeper process a test starts (`tests.support.ServerProcess`) connects as a service role that
may run no DDL, on a database `license-svc migrate` made as its owner and granted; the test
itself keeps the owner's connection for its setup and its assertions.

The roles are named after the suite's database (roles are the cluster's), made once per run and
granted on each database a test makes; they stay in the cluster (CI's is thrown away)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.sql import SQL, Identifier, Literal

SWITCH = "LICENSE_SVC_TEST_ROLES"
_PASSWORD = secrets.token_hex(12)
_granted: dict[str, str] = {}


def on() -> bool:
    return os.environ.get(SWITCH, "").lower() in ("1", "true", "yes", "on")


def service_url(database_url: str) -> str:
    """`database_url` as the service role (migrated and granted first), or as it is when the
    switch is off."""
    if not on():
        return database_url
    if database_url in _granted:
        return _granted[database_url]
    base = str(os.environ.get("LICENSE_SVC_TEST_DATABASE_URL") or database_url)
    if conninfo_to_dict(database_url).get("user") != conninfo_to_dict(base).get("user"):
        return database_url  # a test that chose its role itself (test_database_roles.py)
    prefix = str(conninfo_to_dict(base).get("dbname") or "lsvc")[:40]
    service, readonly = f"{prefix}_service", f"{prefix}_readonly"
    with psycopg.connect(database_url, autocommit=True) as conn:
        for role in (service, readonly):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            statement = (
                "ALTER ROLE {} LOGIN PASSWORD {}" if exists else "CREATE ROLE {} LOGIN PASSWORD {}"
            )
            conn.execute(SQL(statement).format(Identifier(role), Literal(_PASSWORD)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}
    done = subprocess.run(
        [sys.executable, "-m", "license_svc.entrypoints.cli.main", "migrate",
         "--grant-service", service, "--grant-readonly", readonly],
        env={**env, "LICENSE_SVC_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"license-svc migrate failed: {done.stderr}")
    url = make_conninfo(database_url, user=service, password=_PASSWORD)
    _granted[database_url] = url
    return url
