"""`python -m bench.chaos` (`make chaos`): faults under load, recovery times printed.

Two server replicas, a projection worker and a sweeper run on a fresh database behind a TCP
proxy (`bench.faults`) while activation + issue load runs against both replicas. Then, one
after the other: the servers are SIGKILLed and restarted (alternately), the worker is SIGKILLed
and restarted, and the database is made unreachable for a while. Afterwards it checks:

- no acknowledged write is lost (every acknowledged key and activation is in the store);
- no key is redeemed twice (one KeyActivated per key; no two accounts acknowledged);
- a replayed IssueKeys answered the same codes;
- the views equal a rebuild of them, row for row;
- no call answered UNKNOWN or INTERNAL, and no process logged a traceback;
- health followed the outage (NOT_SERVING during it, SERVING after, on every process).

`tests/chaos/test_chaos.py` runs it (slow) and asserts `Report.failures() == []`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.chaos_parts import (
    Child,
    Load,
    children_for,
    clean_environ,
    drill_logs,
    drill_parser,
    generations,
    head,
    plan_options,
    printed_exit_code,
    start_in_turn,
    store_facts,
    view_differences,
    wait_views_at,
)
from bench.database import fresh_database, server_url
from bench.faults import DatabaseProxy
from bench.processes import BENCH_PEPPER
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc
from projections.registry import NAMES


@dataclass(frozen=True)
class Plan:
    server_kills: int = 5
    worker_kills: int = 4
    outage_seconds: float = 3.0
    settle_seconds: float = 1.0  # load between two faults
    clients: int = 4


@dataclass
class Invariants:
    """What both drills (this one and `bench.failover`) check after the load."""

    lost_keys: int = 0
    lost_activations: list[str] = field(default_factory=list)
    double_redemptions: list[str] = field(default_factory=list)
    replayed_differently: list[str] = field(default_factory=list)
    view_differences: dict[str, int] = field(default_factory=dict)
    tracebacks: list[str] = field(default_factory=list)

    def write_failures(self) -> list[str]:
        found = []
        if self.lost_keys or self.lost_activations:
            found.append(f"lost writes: {self.lost_keys} keys, {self.lost_activations}")
        if self.double_redemptions:
            found.append(f"double redemptions: {self.double_redemptions}")
        if self.replayed_differently:
            found.append(f"replays answered other codes: {self.replayed_differently}")
        return found

    def failures(self) -> list[str]:
        return self.write_failures()

    def print_verdict(self, drill: str) -> None:
        failures = self.failures()
        print(
            f"{drill}: all invariants hold"
            if not failures
            else f"{drill}: FAILED: " + "; ".join(failures)
        )

    def check_activations_and_logs(
        self,
        db_url: str,
        server: Child,
        activations: dict[str, set[str]],
        logs: Path,
        children: list[Child],
    ) -> None:
        """Each acknowledged activation held for one of its accounts, the views equal a rebuild,
        no process logged a traceback."""
        keys = pb_grpc.KeyServiceStub(server.channel)
        ops = (("authorization", "Bearer dev-ops"),)
        for key_id, accounts in activations.items():
            if len(accounts) > 1:
                self.double_redemptions.append(key_id)
            key = keys.GetKey(pb.GetKeyRequest(key_id=key_id), metadata=ops, timeout=10).key
            if key.account_id not in accounts:  # activated (or expired since) for that account
                self.lost_activations.append(key_id)
        self.view_differences = _rebuild_and_compare(db_url, logs)
        for child in children:
            text = child.log_path.read_text(errors="replace")
            if "Traceback" in text or "unhandled error" in text:
                self.tracebacks.append(str(child.log_path))


@dataclass
class Report(Invariants):
    server_recovery: list[float] = field(default_factory=list)  # kill → replacement SERVING
    worker_recovery: list[float] = field(default_factory=list)  # kill → views at the head
    outage_detected: dict[str, float] = field(default_factory=dict)  # cut → NOT_SERVING
    outage_healed: dict[str, float] = field(default_factory=dict)  # restore → SERVING
    outage_call_max: float = 0.0  # slowest call started while the database was cut
    outage_first_write: float = 0.0  # restore → first acknowledged write
    outage_views: float = 0.0  # restore → views at the head
    codes: dict[str, int] = field(default_factory=dict)
    acknowledged_keys: int = 0
    acknowledged_activations: int = 0

    def failures(self) -> list[str]:
        found = self.write_failures()
        if any(self.view_differences.values()):
            found.append(f"views differ from a rebuild: {self.view_differences}")
        if bad := {c: n for c, n in self.codes.items() if c in ("UNKNOWN", "INTERNAL")}:
            found.append(f"calls answered {bad}")
        if self.tracebacks:
            found.append(f"tracebacks in {self.tracebacks}")
        if not self.acknowledged_keys or not self.acknowledged_activations:
            found.append("no load was acknowledged")
        return found

    def print(self) -> None:
        def spread(values: list[float]) -> str:
            if not values:
                return "-"
            return (
                f"median {statistics.median(values):.2f}s, max {max(values):.2f}s (n={len(values)})"
            )

        print("chaos: recovery times")
        print(f"  server SIGKILL -> replacement SERVING: {spread(self.server_recovery)}")
        print(f"  worker SIGKILL -> views at the head:   {spread(self.worker_recovery)}")
        for name, seconds in self.outage_detected.items():
            healed = self.outage_healed.get(name, float("nan"))
            print(
                f"  outage, {name:9}: NOT_SERVING {seconds:.2f}s after the cut,"
                f" SERVING {healed:.2f}s after the return"
            )
        print(f"  slowest call started during the outage: {self.outage_call_max:.3f}s")
        print(
            f"  return -> first acknowledged write {self.outage_first_write:.2f}s,"
            f" views at the head {self.outage_views:.2f}s"
        )
        print(
            f"chaos: {self.acknowledged_keys} keys and {self.acknowledged_activations}"
            f" activations acknowledged; answers {self.codes}"
        )
        self.print_verdict("chaos")


_connections: dict[str, psycopg.Connection[Any]] = {}


def sql(db_url: str) -> psycopg.Connection[Any]:
    """One connection per database for the run's own polling (the machine's PostgreSQL is
    shared: no connection per poll)."""
    conn = _connections.get(db_url)
    if conn is None or conn.closed:
        conn = _connections[db_url] = psycopg.connect(db_url, autocommit=True)
    return conn


def close_connections() -> None:
    while _connections:
        _connections.popitem()[1].close()


def wait_views(db_url: str, target: int, timeout: float = 120) -> float:
    return wait_views_at(sql(db_url), target, timeout)


def current_head(db_url: str) -> int:
    return head(sql(db_url))


def run(plan: Plan, base_url: str, logs: Path) -> Report:
    with fresh_database(base_url) as db_url:
        proxy = DatabaseProxy(db_url)
        servers, others = children_for(proxy.url, logs)
        worker, sweeper = others
        children = [*servers, worker, sweeper]
        try:
            start_in_turn(children)
            return _faults(plan, db_url, proxy, servers, worker, children, logs)
        finally:
            for child in children:
                child.stop()
            proxy.close()
            close_connections()


def _faults(
    plan: Plan,
    db_url: str,
    proxy: DatabaseProxy,
    servers: list[Child],
    worker: Child,
    children: list[Child],
    logs: Path,
) -> Report:
    report = Report()
    load = Load(servers, plan.clients)
    load.start()
    try:
        time.sleep(plan.settle_seconds)
        for index in range(plan.server_kills):
            server = servers[index % len(servers)]
            started = time.monotonic()
            server.kill()
            server.start()
            server.wait_health("SERVING")
            report.server_recovery.append(time.monotonic() - started)
            time.sleep(plan.settle_seconds)
        for _ in range(plan.worker_kills):
            started = time.monotonic()
            worker.kill()
            worker.start()
            # Up first, then caught up: views already at the head would otherwise count a
            # worker still starting as recovered (and the outage could begin mid-start).
            worker.wait_health("SERVING")
            target = current_head(db_url)
            wait_views(db_url, target)
            report.worker_recovery.append(time.monotonic() - started)
            time.sleep(plan.settle_seconds)
        _outage(plan, db_url, proxy, children, load, report)
        time.sleep(plan.settle_seconds)
    finally:
        load.stop()
    _check(db_url, servers[0], load, report, logs, children)
    return report


def _watch(
    children: list[Child], wanted: str, since: float, timeout: float = 60
) -> dict[str, float]:
    """Seconds from `since` until each child's health first read `wanted` (polled together)."""
    seen: dict[str, float] = {}
    while len(seen) < len(children):
        for child in children:
            if child.name not in seen and child.health() == wanted:
                seen[child.name] = time.monotonic() - since
        if time.monotonic() - since > timeout:
            missing = [c.name for c in children if c.name not in seen]
            raise TimeoutError(f"{missing} not {wanted} after {timeout}s")
        time.sleep(0.02)
    return {child.name: seen[child.name] for child in children}


def _outage(
    plan: Plan, db_url: str, proxy: DatabaseProxy, children: list[Child], load: Load, report: Report
) -> None:
    cut = time.monotonic()
    proxy.cut()
    report.outage_detected = _watch(children, "NOT_SERVING", cut)
    time.sleep(max(0.0, plan.outage_seconds - (time.monotonic() - cut)))
    returned = time.monotonic()
    proxy.restore()
    report.outage_healed = _watch(children, "SERVING", returned)
    while load.acks.last_ack < returned:
        time.sleep(0.02)
    report.outage_first_write = load.acks.last_ack - returned
    wait_views(db_url, current_head(db_url))
    report.outage_views = time.monotonic() - returned
    during = [c for c in list(load.calls) if cut <= c.started <= returned]
    report.outage_call_max = max((c.ended - c.started for c in during), default=0.0)


def _check(
    db_url: str, server: Child, load: Load, report: Report, logs: Path, children: list[Child]
) -> None:
    acks = load.acks
    report.codes = dict(load.codes())
    report.acknowledged_keys = len(acks.keys)
    report.acknowledged_activations = sum(len(a) for a in acks.activations.values())
    report.replayed_differently = list(load.replayed_differently)
    wait_views(db_url, current_head(db_url))
    held, report.double_redemptions = store_facts(sql(db_url), list(acks.keys))
    report.lost_keys = len(acks.keys) - held
    report.check_activations_and_logs(db_url, server, acks.activations, logs, children)


def _rebuild_and_compare(db_url: str, logs: Path, pepper: str = BENCH_PEPPER) -> dict[str, int]:
    """Rebuild every view into a new generation (the old one kept) and diff the two."""
    before = generations(sql(db_url))
    env = {
        **clean_environ(),
        "LICENSE_SVC_DATABASE_URL": db_url,
        "LICENSE_SVC_PEPPER": pepper,
    }
    with (logs / "rebuild.log").open("ab") as log:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "license_svc.entrypoints.cli.main",
                "projections",
                "rebuild",
                "all",
                "--keep-old",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=300,
        )
    conn = sql(db_url)
    after = generations(conn)
    wait_views(db_url, head(conn))
    # The old generations stopped at the switch; no write came after the load stopped.
    return {name: view_differences(conn, name, before[name], after[name]) for name in NAMES}


def main(argv: list[str] | None = None) -> int:
    parser = drill_parser("chaos", __doc__)
    plan_of = plan_options(
        parser, Plan, ["server_kills", "worker_kills", "outage_seconds", "clients"]
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON too")
    args = parser.parse_args(argv)
    plan = plan_of(args)
    report = run(plan, server_url(), drill_logs("chaos"))
    code = printed_exit_code(report)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
