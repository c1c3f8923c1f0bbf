"""Profile the server under one operation's load with py-spy: `python -m bench.profile NAME`.

Starts the service on a fresh database, seeds it, drives closed-loop load at one concurrency
and records the server process with py-spy (`pip install py-spy`), twice: `--gil` (what holds
the interpreter: a sync grpcio server is bounded by one) and `--idle` (where the rpc threads
spend wall time, waiting included). Prints the top functions of each, by inclusive and
by own samples; writes the collapsed stacks and flame graphs to bench/results/profiles/.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from bench import database, projections, stages
from bench.measure import Runner
from bench.plan import Plan
from bench.processes import start_service
from bench.results import Results
from bench.seed import Seeder

OUT = Path(__file__).resolve().parent / "results" / "profiles"
# gil: the thread holding the interpreter lock; idle: every thread, waiting included. (py-spy's
# idle detection sometimes sees nothing on this server: then only the idle view is useful.)
MODES = {"gil": ["--gil"], "idle": ["--idle"]}


def _bucket(frames: list[str]) -> str:
    """Where an rpc thread (one of grpc's pool) is, from its innermost frames."""
    leaf = frames[-1]
    if "_WorkItem.run" not in frames:
        return "idle: no call to run"
    if leaf in ("Connection.wait", "Pipeline.sync", "notifies") or leaf.startswith("wait_"):
        return "waiting for Postgres"
    if leaf in ("Condition.wait", "Event.wait"):
        parents = set(frames[-4:])
        if parents & {"ConnectionPool.getconn", "ConnectionPool._getconn_unchecked"}:
            return "waiting for a pool connection"
        if any("unary_request" in f for f in parents):
            return "waiting for the request message"
        return "waiting on a lock or event (view notice, …)"
    return "running Python (or holding/awaiting the GIL)"


def rpc_threads(collapsed: Path) -> str:
    """Share of rpc-thread samples per bucket: running Python, or waiting for what."""
    shares: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [f.split(" (")[0] for f in stack.split(";")]
        if "_worker" in frames:
            shares[_bucket(frames)] += int(samples)
    total = sum(shares.values()) or 1
    lines = [f"{collapsed.name}: where the rpc threads are"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in shares.most_common()]
    return "\n".join(lines)


def top(collapsed: Path, count: int = 22) -> str:
    """Inclusive and own sample shares per function from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        n = int(samples)
        total += n
        frames = [f.rsplit(":", 1)[0] if f.count(":") > 1 else f for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"{collapsed.name}: {total} samples"]
    for title, counter in (("inclusive", inclusive), ("own", own)):
        lines.append(f"  -- {title}")
        for frame, n in counter.most_common(count):
            lines.append(f"  {100 * n / total:5.1f}%  {frame[:150]}")
    return "\n".join(lines)


def record(pid: int, seconds: float, path: Path, mode: str) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [
            spy,
            "record",
            "-p",
            str(pid),
            "-d",
            str(int(seconds)),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(path),
            "--nolineno",
            f"--{mode}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="an operation of bench.run (e.g. ActivateKey)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--delay",
        type=float,
        default=0.0,
        help="seconds more before recording (an operation that seeds first: RenewSeats100 ~12)",
    )
    parser.add_argument("--mode", choices=sorted(MODES), action="append", help="default: both")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    plan = replace(Plan.quick(), duration=args.seconds + 2 + args.delay, warmup=0.5)
    OUT.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="license-svc-profile-"))
    context = multiprocessing.get_context("spawn")
    with (
        database.fresh_database(database.server_url()) as url,
        ProcessPoolExecutor(1, mp_context=context) as executor,
        start_service(url, 1, logs) as service,
    ):
        worker = projections.start_worker(url, logs)  # so views advance, as in bench.run
        seeder = Seeder(service.address)
        seeder.reads(plan.seed_activated, plan.seed_unredeemed)
        reports = []
        for mode in args.mode or list(MODES):
            path = OUT / f"{args.name}-c{args.concurrency}-{mode}.txt"
            spy: list[subprocess.Popen[bytes]] = []
            timer = threading.Timer(
                plan.warmup + 1.3 + args.delay,
                lambda p=path, m=mode, s=spy: s.append(record(service.pids[0], args.seconds, p, m)),
            )
            timer.start()
            stages.operation(
                Runner(plan, executor),
                Results(),
                service,
                seeder,
                args.name,
                1,
                (args.concurrency,),
            )
            timer.join()
            for process in spy:
                process.wait()
            if not path.exists():
                reports.append(f"{path.name}: py-spy collected no samples")
                continue
            reports.append(top(path))
            if mode == "idle":
                reports.append(rpc_threads(path))
        seeder.close()
        projections.stop_worker(worker)
    print("\n\n".join(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
