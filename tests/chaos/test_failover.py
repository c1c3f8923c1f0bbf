"""Losing the database machine loses nothing: a primary and a synchronous standby made with
PostgreSQL's own tools, two server replicas, the worker and the sweeper on the multi-host URL
under issue, activation and seat acquire load; the primary SIGKILLed and the standby promoted
(`bench.failover`, which prints the timeline). No process is restarted; every invariant must
hold afterwards, and the old primary rejoins as a standby with pg_rewind."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.failover import Plan, run

pytestmark = pytest.mark.slow


def test_a_failover_under_load_loses_no_acknowledged_write_and_every_process_carries_on(
    tmp_path: Path,
) -> None:
    # At least 1,000 acknowledged writes around the kill: the load runs until half of them
    # are acknowledged before it and all of them after it.
    plan = Plan(before_seconds=6, promote_after=3, after_seconds=6, clients=6, min_writes=1000)
    report = run(plan, tmp_path)
    report.print()
    assert report.failures() == []
    assert set(report.not_serving) == set(report.serving)  # health followed the outage
    assert report.rejoined
