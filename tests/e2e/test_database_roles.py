"""Three database roles: `license-svc migrate` makes the schema as its owner and grants the
service role (rows, no DDL) and the read-only role (the dashboard) their rights; a server and a
projection worker then run as the service role, the page reads as the read-only role.

A database and three login roles of their own per test (roles are the cluster's: each name is
unique, and dropped after)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from license_svc.adapters import schema
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests import roles as suite_roles
from tests.e2e.test_startup_failures import production_env, run_cli
from tests.helpers import unique
from tests.support import TOKENS, ServerProcess, WorkerProcess, free_port
from tests.views_support import SMALL_POOLS, stop, wait_until


@dataclass(frozen=True)
class Roles:
    """A database of its own and its three login roles' names and URLs."""

    owner: str
    service: str
    readonly: str
    owner_url: str
    service_url: str
    readonly_url: str

    def url(self, role: str) -> str:
        return str(getattr(self, role + "_url"))


@pytest.fixture
def roles(database_url: str) -> Iterator[Roles]:
    tag = uuid.uuid4().hex[:10]
    name, password = f"lsv_{tag}", f"pw-{tag}"
    owner, service, readonly = f"lsv_{tag}_owner", f"lsv_{tag}_svc", f"lsv_{tag}_ro"
    with psycopg.connect(database_url, autocommit=True) as admin:
        for role in (owner, service, readonly):
            admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    urls = [
        make_conninfo(database_url, dbname=name, user=user, password=password)
        for user in (owner, service, readonly)
    ]
    try:
        yield Roles(owner, service, readonly, *urls)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in (service, readonly, owner):
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def migrate(roles: Roles) -> tuple[int, str, list[str]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "license_svc.entrypoints.cli.main",
            "migrate",
            "--grant-service",
            roles.service,
            "--grant-readonly",
            roles.readonly,
        ],
        env=production_env(
            roles.owner_url, LICENSE_SVC_PEPPER="<unset>", LICENSE_SVC_TOKENS_FILE="<unset>"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr.splitlines()


def test_after_migrate_the_service_and_read_only_roles_cannot_change_the_schema(
    roles: Roles,
) -> None:
    code, out, err = migrate(roles)
    assert code == 0, err
    assert f'TO "{roles.service}";' in out and f'TO "{roles.readonly}";' in out
    assert f"version {schema.SCHEMA_VERSION}" in out
    for role in ("service", "readonly"):
        with psycopg.connect(roles.url(role), autocommit=True) as conn:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE intruder (a int)")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("ALTER TABLE issue_requests ADD COLUMN intruder int")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("DROP TABLE issue_requests")
    with psycopg.connect(roles.readonly_url, autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM licensing_events").fetchone()
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DELETE FROM issue_requests")


def test_a_service_role_refuses_a_schema_that_was_not_migrated(roles: Roles) -> None:
    env = production_env(roles.service_url)
    code, lines = run_cli(["serve"], env)
    assert code == 2 and len(lines) == 1, lines
    assert "license-svc migrate" in lines[0] and "LICENSE_SVC_DATABASE_URL" in lines[0]


def test_the_service_runs_as_the_service_role_and_the_page_reads_as_the_read_only_role(
    roles: Roles, tmp_path: Path
) -> None:
    from tests.e2e.test_dashboard import fetch

    assert migrate(roles)[0] == 0
    pepperless = {"LICENSE_SVC_PEPPER": "", "LICENSE_SVC_TOKENS_FILE": ""}
    worker = WorkerProcess(roles.service_url, tmp_path / "worker.log", **pepperless, **SMALL_POOLS)
    server = ServerProcess(
        roles.service_url,
        tmp_path / "server.log",
        LICENSE_SVC_METRICS_DATABASE_URL=roles.readonly_url,
        **SMALL_POOLS,
    )
    try:
        client = server.client
        issued = client.issue(2, request_id=unique("roles"))
        account = unique("acct")
        position = client.activate(issued.keys[0].code, account).position
        seen = client.entitlements.GetSeatAllowance(
            pb.GetSeatAllowanceRequest(
                account_id=account, product=pb.PRODUCT_INTEGRATIONS, min_position=position
            ),
            metadata=client.as_("integrations"),
            timeout=30,
        )
        assert seen.seats == 3 and seen.position >= position  # the worker kept the views
        with pytest.raises(grpc.RpcError):  # a failed attempt: the limiter writes its row
            client.activate("INT-AAAA-AAAA-AAAA", account, session="s-bad")
        code, lines = run_cli(["expire", "--once"], production_env(roles.service_url, **pepperless))
        assert code == 0, lines
        metrics = text_at(f"http://127.0.0.1:{server.metrics_port}/metrics")
        assert "license_svc_keys_issued_total 2.0" in metrics
        assert 'license_svc_projection_position{view="catalog"}' in metrics
        assert connected_as(roles, roles.readonly) > 0  # /metrics reads as the read-only role

        port = free_port()
        env = production_env(
            roles.readonly_url,
            LICENSE_SVC_PEPPER="<unset>",
            LICENSE_SVC_METRICS_LISTEN="",
            LICENSE_SVC_DASHBOARD_LISTEN=f"127.0.0.1:{port}",
            **SMALL_POOLS,
        )
        command = [sys.executable, "-m", "license_svc.entrypoints.cli.main", "dashboard"]
        with (tmp_path / "dashboard.log").open("wb") as log:
            page = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:

            def answers() -> bool:
                try:
                    return fetch(f"http://127.0.0.1:{port}/login")[0] == 200
                except OSError:
                    return page.poll() is not None

            wait_until(answers, "the dashboard answers", timeout=60)
            assert page.poll() is None, (tmp_path / "dashboard.log").read_text()
            status, _, body = fetch(
                f"http://127.0.0.1:{port}/", Authorization=f"Bearer {TOKENS['ops']}"
            )
            assert status == 200 and "catalog view at position" in body
        finally:
            stop(page)
    finally:
        server.stop()
        worker.stop()
    for log_name in ("server.log", "worker.log", "dashboard.log"):
        assert "permission denied" not in (tmp_path / log_name).read_text(), log_name


def text_at(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def connected_as(roles: Roles, role: str) -> int:
    with psycopg.connect(roles.owner_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE usename = %s AND datname = current_database()",
            (role,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_with_the_suite_switch_the_shared_server_connects_as_the_service_role(
    server: ServerProcess, database_url: str
) -> None:
    if not suite_roles.on():
        pytest.skip(f"{suite_roles.SWITCH} is off: servers connect as the suite's own role")
    service = str(conninfo_to_dict(suite_roles.service_url(database_url))["user"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (service,)
        ).fetchone()
    assert row is not None and row[0] > 0
