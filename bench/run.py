"""`python -m bench.run [--quick] [--workers N] [--only NAME[,NAME…]] [--clients N]`

Creates a fresh database on the test PostgreSQL server (LICENSE_SVC_TEST_DATABASE_URL, else an
embedded one), measures the ceilings, starts the real server (N replicas on one port), seeds it
through the API, measures every operation that is implemented (the others are reported as
"not available yet"), and writes bench/results/<stamp>.json, latest.json and latest.png.
Targets are printed with PASS/FAIL and never asserted.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import grpc
import psycopg

from bench import appends, chart, database, hotpath, processes, projections, report, stages, tokens
from bench.measure import Runner
from bench.plan import Plan
from bench.processes import service_env, start_service
from bench.results import Results
from bench.scenarios import SCENARIOS
from bench.seed import Seeder
from license_svc import config

log = logging.getLogger("bench")
RESULTS = Path(__file__).resolve().parent / "results"
ORDER = [
    *stages.READS,
    "ActivateKey",
    "RecordPlanEvent",
    "ReadYourWrites",
    "SeatLeasePair",
    "RenewSeats100",
    "ContendedSeats",
    "Rebuild",
    "IssueKeys",
    *hotpath.STAGES,  # CacheReads, WatchFanout, IdleWatchers
    "TokenVerify",  # the shipped verifier, in this process: no server
]
# --only names that stand for several stages.
ALIASES = {
    "Capacity": ("GetSeatAllowance", "ActivateKey", "CacheReads"),
    "Appends": ("g_appends",),  # group commit on and off at c=64, and pg_test_fsync
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer levels, short windows")
    parser.add_argument("--workers", type=int, default=1, help="server processes on one port")
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated: {', '.join(ORDER)}, StreamEvents (alone), Appends (group commit "
        "on and off, pg_test_fsync), or a ceiling (a_echo, b_select, c_insert, d_executemany, …)",
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the 1 vs 2 workers reads")
    parser.add_argument(
        "--no-projection-worker",
        action="store_true",
        help="do not run `license-svc projections run` (isolates the write path; views stall)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def _meta(args: argparse.Namespace, plan: Plan, url: str, stamp: str) -> dict[str, object]:
    settings = config.load(service_env(url, "127.0.0.1:0", args.workers))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {
        "stamp": stamp,
        "commit": commit,
        "quick": args.quick,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "postgres": row[0] if row else "",
        "database": "LICENSE_SVC_TEST_DATABASE_URL"
        if os.environ.get("LICENSE_SVC_TEST_DATABASE_URL")
        else "embedded",
        "server_settings": {
            "grpc_workers": settings.grpc_workers,
            "pool_size": settings.pool_size,
            "pool_max_overflow": settings.pool_max_overflow,
        },
        "plan": asdict(plan),
        "projection_worker": not args.no_projection_worker
        and bool(set(projections.subcommands()) & set(projections.WORKER_COMMANDS)),
    }


def _only(args: argparse.Namespace) -> list[str]:
    names = [n for n in args.only.split(",") if n]
    return [m for n in names for m in ALIASES.get(n, (n,))]


def measure(args: argparse.Namespace, plan: Plan, results: Results, url: str, logs: Path) -> None:
    only = _only(args)
    selected = [n for n in ORDER if not only or n in only]
    extra = [n for n in only if n not in ORDER]
    ceilings = stages.ceilings_for(
        [*selected, *extra, *(stages.SERVER_MODEL if not (args.only or args.quick) else ())]
    )
    with processes.process_pool(plan.clients) as executor:
        runner = Runner(plan, executor)
        stages.rpc_ceilings(runner, results, url, args.workers, logs, ceilings)
        if "e_repository" in ceilings:
            stages.repository_ceiling(runner, results, url)
        if "g_appends" in ceilings:
            appends.append_rows(runner, results, url)
        worker = None if args.no_projection_worker else projections.start_worker(url, logs)
        runner.worker_pids = [worker.pid] if worker is not None else []
        try:
            with start_service(url, args.workers, logs) as service:
                seeder = Seeder(service.address)
                for name in selected:
                    if name == "Rebuild":
                        stages.rebuild(runner, results, url, seeder, logs)
                        if "f_notifications" in ceilings:
                            stages.notification_ceiling(runner, results, url)
                    elif name == "CacheReads":
                        hotpath.cache_reads(runner, results, url, seeder, args.workers, logs)
                    elif name == "WatchFanout":
                        hotpath.watch_fanout(results, url, seeder, args.workers, logs)
                    elif name == "IdleWatchers":
                        hotpath.idle_watchers(results, url, args.workers, logs, args.quick)
                    elif name == "TokenVerify":
                        tokens.verify_rate(results, 1.0 if args.quick else 5.0)
                    else:
                        stages.operation(runner, results, service, seeder, name, args.workers)
                if "d_executemany" in ceilings:
                    stages.bulk_ceilings(runner, results, url)
                if "f_notifications" in ceilings and "f_notifications" not in results.series:
                    stages.notification_ceiling(runner, results, url)
                if not args.quick:
                    stages.recheck(runner, results, url, service, seeder, args.workers, logs)
                seeder.close()
            if not args.no_scaling and args.workers in (1, 2):
                other = 3 - args.workers
                reads = [n for n in ("GetSeatAllowance", "ValidateKey") if n in selected]
                if not reads:
                    return
                with start_service(url, other, logs) as service:
                    seeds, position = seeder.seeds, seeder.last_position
                    seeder = Seeder(service.address)
                    seeder.seeds, seeder.last_position = seeds, position  # same database
                    for name in reads:
                        stages.operation(
                            runner,
                            results,
                            service,
                            seeder,
                            name,
                            other,
                            plan.scaling_levels,
                            label=f"{name}@{other}w",
                        )
                    seeder.close()
                stages.scaling(results, args.workers, other)
        finally:
            projections.stop_worker(worker)


def _unwind_on_signals() -> None:
    """SIGTERM and SIGINT unwind the run like an exception: every `with` stops its child
    processes and drops the run's database, then the embedded PostgreSQL's exit hook stops it
    and deletes its folder. (SIGTERM's default would skip all of that and leave the server
    running.) Further signals are ignored so that the cleanup itself is not cut short."""

    def on_signal(signum: int, _frame: object) -> None:
        for other in (signal.SIGTERM, signal.SIGINT):
            signal.signal(other, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    _unwind_on_signals()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.only == "StreamEvents":  # its own stage: followers, latency, stalled reader
        from bench import streams

        return streams.main(["--seconds", "3"] if args.quick else [])
    plan = replace(Plan.quick() if args.quick else Plan.full(), clients=args.clients)
    unknown = [
        n
        for n in _only(args)
        if n not in ORDER
        and n not in SCENARIOS
        and n not in stages.ceilings_for([*stages.NEEDS, *stages.SERVER_MODEL])
    ]
    if unknown:
        log.error("unknown --only name(s): %s", ", ".join(unknown))
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = Path(tempfile.mkdtemp(prefix=f"license-svc-bench-{stamp}-"))
    began = time.monotonic()
    results = Results()
    try:
        with database.fresh_database(database.server_url()) as url:
            results.meta = _meta(args, plan, url, stamp)
            processes.watch_cluster(url)  # dbCPU: this run's PostgreSQL cluster only
            measure(args, plan, results, url, logs)
    except KeyboardInterrupt as interrupted:
        log.error("interrupted (%s): child processes stopped, database dropped", interrupted)
        return 130
    results.meta["seconds"] = round(time.monotonic() - began, 1)
    results.meta["per_call_cpu"] = hotpath.per_call_cpu(results)
    results.meta["capacity"] = hotpath.capacity(results)
    found = report.targets(results)
    print()
    print(report.table(results))
    print()
    print(hotpath.capacity_text(results))
    print()
    print(report.targets_text(found))
    scaling = report.scaling_text(results)
    if scaling:
        print()
        print(scaling)
    path = report.write_json(results, found, args.results, stamp)
    png = chart.draw(results, args.results / "latest.png")
    print(f"\nresults: {path} (and latest.json); chart: {png}; server logs: {logs}")
    print(f"run took {results.meta['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
