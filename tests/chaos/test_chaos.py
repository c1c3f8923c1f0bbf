"""The chaos suite: two replicas, a worker and a sweeper under load, servers SIGKILLed five
times, the worker four times, the database cut once (`bench.chaos`, which also prints the
recovery times); every invariant must hold afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from bench.chaos import Plan, run

pytestmark = pytest.mark.slow


def test_faults_under_load_lose_nothing_and_double_nothing(
    database_url: str, tmp_path: Path
) -> None:
    base = make_conninfo(database_url, dbname="postgres")
    plan = Plan(server_kills=5, worker_kills=4, outage_seconds=2, settle_seconds=0.5, clients=3)
    report = run(plan, base, tmp_path)
    report.print()
    assert report.failures() == []
    assert len(report.server_recovery) == 5
    assert len(report.worker_recovery) == 4
    assert set(report.outage_detected) == set(report.outage_healed)  # health followed it
