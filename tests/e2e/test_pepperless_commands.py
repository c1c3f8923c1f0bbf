"""Only the processes that mint or look up codes hold the pepper: `project`, `expire` and
`dashboard` start without it (and `project` and `expire` without the token table, which they
never consult). Each runs the real command in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.test_startup_failures import production_env, run_cli
from tests.support import SweeperProcess, WorkerProcess, free_port
from tests.views_support import cli_env, stop, wait_until

WITHOUT_SECRETS = {"LICENSE_SVC_PEPPER": "", "LICENSE_SVC_TOKENS_FILE": ""}


def test_a_projection_worker_starts_without_the_pepper_or_the_token_table(
    database_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(database_url, tmp_path / "worker.log", **WITHOUT_SECRETS)
    try:
        worker.client.wait_serving()  # its health endpoint: database reachable, threads alive
    finally:
        assert worker.stop() == 0
    assert "PEPPER" not in worker.log_text()


def test_the_expiry_sweeper_starts_without_the_pepper_or_the_token_table(
    database_url: str, tmp_path: Path
) -> None:
    sweeper = SweeperProcess(database_url, tmp_path / "sweeper.log", **WITHOUT_SECRETS)
    assert sweeper.stop() == 0
    env = production_env(database_url, LICENSE_SVC_PEPPER="<unset>")
    code, lines = run_cli(["expire", "--once"], {**env, "LICENSE_SVC_TOKENS_FILE": ""})
    assert code == 0, lines


def test_the_dashboard_starts_without_the_pepper(database_url: str, tmp_path: Path) -> None:
    from tests.e2e.test_dashboard import fetch

    port = free_port()
    command = [sys.executable, "-m", "license_svc.entrypoints.cli.main", "dashboard"]
    env = cli_env(
        database_url,
        LICENSE_SVC_PEPPER="",
        LICENSE_SVC_METRICS_LISTEN="",
        LICENSE_SVC_DASHBOARD_LISTEN=f"127.0.0.1:{port}",
    )
    with (tmp_path / "dashboard.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:

        def answers() -> bool:
            try:
                return fetch(f"http://127.0.0.1:{port}/login")[0] == 200
            except OSError:
                return process.poll() is not None  # it exited: the assertion below says why

        wait_until(answers, "the dashboard answers", timeout=60)
        assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
        status, _, body = fetch(f"http://127.0.0.1:{port}/", Authorization="Bearer dev-ops")
        assert status == 200 and "catalog view at position" in body
    finally:
        stop(process)


def test_the_maintenance_commands_need_neither_the_pepper_nor_the_token_table(
    database_url: str,
) -> None:
    env = production_env(
        database_url, LICENSE_SVC_PEPPER="<unset>", LICENSE_SVC_TOKENS_FILE="<unset>"
    )
    for command in (["projections", "list"], ["attempts", "show", "--account", "acct-none"]):
        code, lines = run_cli(command, env)
        assert code == 0, (command, lines)
