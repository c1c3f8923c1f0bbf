"""The append rows: activations/s at c=64 through the service's recorder with group commit on and
off (`LICENSE_SVC_GROUP_COMMIT`), in a client process as ceiling (e), beside `pg_test_fsync`'s
figure for the disk the database writes to: what the store's one table lock leaves of the disk.
"""

from __future__ import annotations

import glob
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.measure import Runner
from bench.results import Results, Series, scalar_row

log = logging.getLogger("bench")

CONCURRENCY = 64
RATE = 2_000  # activations/s to budget fresh keys for (group commit on goes past 1,000/s)
MODES = ("off", "on")  # group commit


def append_rows(runner: Runner, results: Results, url: str) -> None:
    for mode in MODES:
        series = results.add(Series(f"g_appends group commit {mode}", "ceiling"))
        runner.repository(series, url, [CONCURRENCY], recorder=mode, rate=RATE)
        row = series.levels[-1] if series.levels else {}
        log.info(
            "%-24s %.1f appends per transaction; %.2f ms per group (checkout included);"
            " %.2f ms per round trip (BEGIN sent to COMMIT answered: the lock's wait and hold)",
            series.name,
            row.get("appends_per_group", 1.0),
            row.get("ms_per_group", float("nan")),
            row.get("ms_per_round_trip", float("nan")),
        )
    fsync = results.add(Series("g_pg_test_fsync", "ceiling", unit="syncs/s"))
    found = fdatasync_per_second()
    if found is None:
        fsync.status, fsync.note = "not measured", "pg_test_fsync not found"
    else:
        rate, where = found
        fsync.levels.append(scalar_row(rate, path=where))
        log.info("%-24s %12.0f syncs/s (one 8 kB write + fdatasync, %s)", fsync.name, rate, where)


def pg_test_fsync() -> str | None:
    """PostgreSQL's own tool: on the PATH, or beside the server's binaries."""
    found = shutil.which("pg_test_fsync")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_test_fsync"))
    return candidates[-1] if candidates else None


# "        fdatasync                          19345.123 ops/sec      52 usecs/op"
_FDATASYNC = re.compile(r"^\s*fdatasync\s+([\d.]+) ops/sec", re.MULTILINE)


def fdatasync_per_second(seconds: int = 1) -> tuple[float, str] | None:
    """Syncs/s of one 8 kB write + fdatasync (WAL's default method on Linux), in a temporary
    file: on this machine's one disk, the one the database writes to."""
    tool = pg_test_fsync()
    if tool is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-fsync-") as folder:
        target = Path(folder) / "probe"
        done = subprocess.run(
            [tool, "-s", str(seconds), "-f", str(target)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    first = _FDATASYNC.search(done.stdout)  # the first table: one 8 kB write per sync
    return (float(first.group(1)), folder) if first else None
