"""An interrupted `make bench` on the embedded default leaves nothing behind: SIGTERM mid-run
stops its server and client processes, drops its database, stops its embedded PostgreSQL and
deletes that PostgreSQL's folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from tests.support import REPO

BENCH = [sys.executable, "-m", "bench.run", "--quick", "--only", "GetSeatAllowance", "--no-scaling"]


def processes_under(folder: Path) -> list[str]:
    """Processes whose command line names `folder` (the embedded PostgreSQL runs from it)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(folder) in cmdline:
            found.append(f"{process.pid}: {cmdline[:120]}")
    return found


@pytest.mark.slow
def test_sigterm_mid_run_stops_everything_the_bench_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LICENSE_SVC_TEST_DATABASE_URL"}
    env["TMPDIR"] = str(tmp_path)  # the bench's embedded PostgreSQL lives in a folder of ours
    bench = subprocess.Popen(
        [*BENCH, "--results", str(tmp_path / "results")],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    measuring = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert bench.stderr is not None
        for line in bench.stderr:
            lines.append(line)
            if " bench a_echo " in line:  # ceilings under way: servers and clients running
                measuring.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert measuring.wait(180), "".join(lines[-20:])
        assert processes_under(tmp_path), "the embedded PostgreSQL runs from tmp_path"
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(120) == 130
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    reader.join(10)
    assert any("interrupted (SIGTERM)" in line for line in lines), "".join(lines[-20:])
    assert processes_under(tmp_path) == []
    assert not list(tmp_path.glob("license-svc-bench-*/pg")), "the embedded data folder is gone"
