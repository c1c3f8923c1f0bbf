"""The short form of `make fuzz`, in every `make test`: a few thousand hostile requests at a real
server get no UNKNOWN, no INTERNAL, no answer past the deadline, and change nothing when refused."""

from __future__ import annotations

from pathlib import Path

from tests.fuzz.run import run
from tests.fuzz.strategies import methods

REQUESTS = 3_000


def test_a_few_thousand_hostile_requests_get_deliberate_answers_and_change_nothing(
    database_url: str, tmp_path: Path
) -> None:
    report = run(database_url, REQUESTS, seed_value=0, log_dir=tmp_path)
    summary = report.summary()
    assert report.requests == REQUESTS, summary
    assert report.bad == 0, summary
    assert report.hangs == 0, summary
    assert report.changed == 0, summary
    assert report.rejected_unchanged == report.rejected > REQUESTS // 2, summary
    assert len(report.codes) == len(methods()), summary  # every method of the contract was called
