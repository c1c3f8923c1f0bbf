"""One fuzz run: a database of its own, a real `license-svc serve` process keeping its views,
seeded with real keys, then `requests` hostile requests (see `driver.py`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from license_svc.adapters import embedded as embedded_db
from tests.fuzz import driver
from tests.fuzz.seeding import seed
from tests.support import ServerProcess
from tests.views_support import SMALL_POOLS, fresh_database


def database_url() -> str:
    """The test database server (LICENSE_SVC_TEST_DATABASE_URL), else an embedded one."""
    url = os.environ.get("LICENSE_SVC_TEST_DATABASE_URL")
    if url:
        return url
    return embedded_db.start(Path(tempfile.mkdtemp(prefix="license-svc-fuzz-")) / "pg", keep=False)


def run(
    server_url: str, requests: int, seed_value: int, log_dir: Path, progress: int = 0
) -> driver.Report:
    with fresh_database(server_url) as url:
        server = ServerProcess(
            url, log_dir / "fuzz-server.log", LICENSE_SVC_RUN_PROJECTIONS="1", **SMALL_POOLS
        )
        try:
            known = seed(server.client)
            report = driver.fuzz(server.address, url, known, requests, seed_value, progress)
            server.client.wait_serving(timeout=10)  # still answering health after all of it
        finally:
            server.stop()
    return report
