"""`make fuzz`: python -m tests.fuzz [--requests N] [--seed S] [--save]."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.fuzz import driver
from tests.fuzz.run import database_url, run
from tests.support import REPO


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true", help="also write bench/results/fuzz-*.txt")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="license-svc-fuzz-logs-"))
    report = run(database_url(), args.requests, args.seed, log_dir, progress=5_000)
    text = report.summary()
    print(text)
    print(f"server log: {log_dir / 'fuzz-server.log'}")
    if args.save:
        path = REPO / "bench" / "results" / f"fuzz-{driver.stamp()}.txt"
        path.write_text(text + "\n")
        print(f"saved {path.relative_to(REPO)}")
    return 1 if report.bad or report.hangs or report.changed else 0


if __name__ == "__main__":
    sys.exit(main())
