"""`make run`'s process (`license-svc run`): embedded PostgreSQL under var/, data kept across
restarts, a clean stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.support import REPO, Client, free_port


def start_dev_server(
    var_dir: Path, address: str, log: Path, dashboard: str = ""
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}
    env.update({"LICENSE_SVC_VAR_DIR": str(var_dir), "LICENSE_SVC_LISTEN": address})
    env["LICENSE_SVC_METRICS_LISTEN"] = f"127.0.0.1:{free_port()}"  # not the shared default
    env["LICENSE_SVC_DASHBOARD_LISTEN"] = dashboard  # not the shared default either
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "license_svc.entrypoints.cli.main", "run"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=60)


def test_run_serves_on_an_embedded_database_and_keeps_data_across_restarts(tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "run.log"
    first = start_dev_server(tmp_path / "var", address, log)
    client = Client(address)
    try:
        client.wait_serving(timeout=60)
        issued = client.issue(count=2, request_id="survives-restart")
    finally:
        client.close()
        assert stop(first) == 0

    dashboard = f"127.0.0.1:{free_port()}"
    second = start_dev_server(tmp_path / "var", address, log, dashboard)
    client = Client(address)
    try:
        client.wait_serving(timeout=60)
        key = client.keys.GetKey(
            pb.GetKeyRequest(key_id=issued.keys[0].key_id), metadata=client.as_("ops"), timeout=10
        ).key
        assert key.status == pb.KEY_STATUS_ISSUED
        again = client.issue(count=2, request_id="survives-restart")
        assert [k.code for k in again.keys] == [k.code for k in issued.keys]
        page = urllib.request.Request(
            f"http://{dashboard}/", headers={"Authorization": "Bearer dev-ops"}
        )
        with urllib.request.urlopen(page, timeout=10) as answer:  # `run` serves the dashboard
            assert "catalog view at position" in answer.read().decode()
    finally:
        client.close()
        assert stop(second) == 0
    text = log.read_text()
    assert "embedded PostgreSQL" in text
    assert "DEVELOPMENT tokens" in text
    assert (tmp_path / "var" / "pg" / "PG_VERSION").exists()
