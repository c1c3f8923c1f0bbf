"""The bench's arithmetic, without a database: percentiles, summaries and target verdicts."""

from __future__ import annotations

import math

from bench import report
from bench.load import LoadResult
from bench.results import Results, Series, level_row, scalar_row
from bench.stats import percentile, ratio, summarize


def test_percentiles_interpolate_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 25) == 2.0
    assert math.isclose(percentile(values, 99), 4.96)


def test_an_empty_measurement_has_no_percentiles_rather_than_zero() -> None:
    assert math.isnan(percentile([], 50))
    summary = summarize([], errors=3, seconds=1.0)
    assert summary.calls == 0 and summary.errors == 3 and math.isnan(summary.p99_ms)


def test_batch_calls_count_their_rows_as_throughput() -> None:
    result = LoadResult(latencies=[0.5, 0.5], units=20_000, started=100.0, finished=102.0)
    row = level_row(1, result, None, window=2.0)
    assert row["throughput"] == 10_000
    assert row["calls_per_s"] == 1.0
    assert row["p50_ms"] == 500.0


def test_targets_compare_with_the_ceiling_at_the_same_concurrency() -> None:
    results = Results()
    ceiling = results.add(Series("e_repository", "ceiling"))
    ceiling.levels.append({"concurrency": 32, "throughput": 1000.0, "p99_ms": 10.0})
    activate = results.add(Series("ActivateKey", "operation", ceiling="e_repository"))
    activate.levels.append({"concurrency": 32, "throughput": 650.0, "p99_ms": 30.0})
    copy = results.add(Series("d_copy", "ceiling", unit="rows/s"))
    copy.levels.append(scalar_row(80_000.0))
    found = {t.name: t for t in report.targets(results)}
    assert found["ActivateKey throughput / ceiling (e)"].value == 0.65
    assert found["ActivateKey throughput / ceiling (e)"].passed is False
    assert found["ActivateKey p99 / ceiling (e) p99"].value == 3.0
    assert found["ActivateKey p99 / ceiling (e) p99"].passed is False
    assert found["IssueKeys rows/s / COPY (d)"].passed is None  # not measured
    assert ratio(1.0, 0.0) is None
    assert "ActivateKey" in report.table(results)


def test_a_paired_recheck_is_reported_beside_its_target_with_the_same_limit() -> None:
    results = Results()
    results.rechecks.append(
        {
            "operation": "ActivateKey",
            "ceiling": "e_repository",
            "concurrency": 32,
            "rounds": [1.4, 1.6, 1.7],
            "median": 1.6,
        }
    )
    found = {t.name: t for t in report.targets(results)}
    paired = found["ActivateKey throughput / ceiling (e), paired re-check (median of 3)"]
    assert (paired.value, paired.limit, paired.passed) == (1.6, 1.5, True)
    assert "1.40, 1.60, 1.70" in paired.note
