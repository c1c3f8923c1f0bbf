"""`python -m bench.failover` (`make chaos`'s second scenario): the database machine is lost.

A primary and a synchronous streaming standby (`bench.replication`, PostgreSQL's own tools);
two server replicas, the projection worker and the sweeper on the multi-host URL
(`target_session_attrs=read-write`) under issue + activation + seat acquire load. The
primary's postmaster is SIGKILLed, the standby promoted a moment later (what Patroni or
CloudNativePG would do), and no process is restarted. Afterwards it checks:

- no acknowledged write (key, activation, seat lease) is lost and no key is redeemed twice;
- the views equal a rebuild of them on the new primary, row for row;
- no call answered UNKNOWN or INTERNAL or hung past its deadline, and no process logged a
  traceback;
- every process was SERVING again within `serving_within` seconds of the promotion;
- the old primary rejoined as a standby of the new one with `pg_rewind`.

It prints the timeline: kill → NOT_SERVING (each process) → promotion → first acknowledged
write → SERVING (each process), in ms from the kill. `tests/chaos/test_failover.py` runs it.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.chaos import Invariants, close_connections, current_head, sql, wait_views
from bench.chaos_parts import (
    Call,
    Child,
    Load,
    children_for,
    drill_logs,
    drill_parser,
    plan_options,
    printed_exit_code,
    start_in_turn,
    store_facts,
)
from bench.replication import Cluster
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc
from projections.registry import NAMES

WRITES = ("IssueKeys", "ActivateKey", "AcquireSeat")
INTEGRATIONS = (("authorization", "Bearer dev-integrations"),)


class DrillLoad(Load):
    """The chaos run's issue + activation load, and seat acquires on the activated accounts
    (a turn later: the allowance view has the activation by then, mostly)."""

    def __init__(self, servers: list[Child], clients: int) -> None:
        super().__init__(servers, clients)
        self._seats = [pb_grpc.SeatServiceStub(s.channel) for s in servers]
        self._accounts: list[str] = []  # activated, a seat to acquire (bounded below)
        self.leases: set[str] = set()  # acknowledged lease ids

    def _activate(self, activation: Any, key: tuple[str, str], rng: random.Random) -> None:
        with self._lock:
            account = self._accounts.pop(0) if self._accounts else None
        if account is not None:
            self._acquire(account, rng)
        before = set(self.acks.activations.get(key[0], ()))
        super()._activate(activation, key, rng)
        with self._lock:
            added = self.acks.activations.get(key[0], set()) - before
            self._accounts.extend(added)
            del self._accounts[:-1000]  # the newest thousand at most

    def _acquire(self, account: str, rng: random.Random) -> None:
        request = pb.AcquireSeatRequest(
            account_id=account,
            product=pb.PRODUCT_INTEGRATIONS,
            connection_id=f"c-{uuid.uuid4().hex[:8]}",
            holder="failover-drill",
        )
        stub = self._seats[rng.randrange(len(self._seats))]
        started = time.monotonic()
        code = "OK"
        try:
            answer = stub.AcquireSeat(request, metadata=INTEGRATIONS, timeout=5)
        except grpc.RpcError as error:
            code = error.code().name  # type: ignore[attr-defined]
        with self._lock:
            self.calls.append(Call("AcquireSeat", code, started, time.monotonic()))
            if code == "OK":
                self.leases.add(answer.lease.lease_id)


@dataclass(frozen=True)
class Plan:
    before_seconds: float = 6.0  # load before the kill (at least; until min_writes / 2)
    # kill → promotion. Longer than health's hysteresis (3 failed checks 0.5 s apart): with a
    # promotion within 1.5 s health stays SERVING throughout (calls answer UNAVAILABLE).
    promote_after: float = 3.0
    after_seconds: float = 6.0  # load after every process is SERVING again (until min_writes)
    clients: int = 6
    serving_within: float = 10.0  # promotion → every process SERVING
    min_writes: int = 1000  # acknowledged writes around the kill


@dataclass
class Report(Invariants):
    not_serving: dict[str, float] = field(default_factory=dict)  # ms after the kill
    promoting: float = 0.0  # `pg_ctl promote` asked
    promoted: float = 0.0  # promoted, its synchronous list cleared
    first_write: float = 0.0
    serving: dict[str, float] = field(default_factory=dict)
    acknowledged_writes: int = 0
    acknowledged_leases: int = 0
    lost_leases: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    rejoined: bool = False
    plan: Plan = field(default_factory=Plan)

    def failures(self) -> list[str]:
        found = [f"lost seat leases: {self.lost_leases}"] if self.lost_leases else []
        found += self.write_failures()
        if any(self.view_differences.values()) or len(self.view_differences) < len(NAMES):
            found.append(f"views differ from a rebuild: {self.view_differences}")
        # DEADLINE_EXCEEDED: a call that hung past its deadline (5 s) instead of answering.
        bad_codes = ("UNKNOWN", "INTERNAL", "DEADLINE_EXCEEDED")
        if bad := {c: n for c, n in self.codes.items() if c in bad_codes}:
            found.append(f"calls answered {bad}")
        if self.tracebacks:
            found.append(f"tracebacks in {self.tracebacks}")
        if self.acknowledged_writes < self.plan.min_writes:
            found.append(f"only {self.acknowledged_writes} acknowledged writes")
        late = {
            name: ms
            for name, ms in self.serving.items()
            if ms - self.promoting > self.plan.serving_within * 1000
        }
        if late or len(self.serving) < len(self.not_serving):
            found.append(f"not SERVING within {self.plan.serving_within}s: {late}")
        hysteresis = 1.5  # health_failures × health_interval_seconds (the defaults)
        if self.plan.promote_after > hysteresis + 1 and len(self.not_serving) < len(self.serving):
            found.append(f"health missed the outage: NOT_SERVING only {list(self.not_serving)}")
        if not self.rejoined:
            found.append("the old primary did not rejoin")
        return found

    def print(self) -> None:
        print("failover: timeline, ms after the primary's SIGKILL")
        events = [(ms, f"{name} NOT_SERVING") for name, ms in self.not_serving.items()]
        events += [(ms, f"{name} SERVING") for name, ms in self.serving.items()]
        events += [
            (self.promoting, "promotion asked (pg_ctl promote)"),
            (self.promoted, "standby promoted, its synchronous list cleared"),
            (self.first_write, "first acknowledged write"),
        ]
        for ms, what in sorted(events):
            print(f"  {ms:8.0f}  {what}")
        print(
            f"failover: {self.acknowledged_writes} acknowledged writes"
            f" ({self.acknowledged_leases} seat leases); answers {self.codes}"
        )
        self.print_verdict("failover")


class HealthWatch:
    """Polls every process's health in one thread; remembers each one's transitions."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.seen: list[tuple[float, str, str]] = []  # (monotonic, process, status)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.round_began = 0.0

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _run(self) -> None:
        last: dict[str, str] = {}
        while not self._stopping.wait(0.02):
            began = time.monotonic()
            for child in self.children:
                status = child.health()
                if last.get(child.name) != status:
                    last[child.name] = status
                    self.seen.append((time.monotonic(), child.name, status))
            self.round_began = began

    def first(self, status: str, since: float) -> dict[str, float]:
        """When each process first changed to `status` after `since`."""
        found: dict[str, float] = {}
        for at, name, seen in list(self.seen):
            if seen == status and at >= since and name not in found:
                found[name] = at
        return found

    def settled(self, status: str, since: float) -> dict[str, float] | None:
        """When each process last changed to `status`, once a whole poll that began after
        `since` found every one of them in it (None until then)."""
        if self.round_began < since:
            return None
        current: dict[str, tuple[float, str]] = {}
        for at, name, seen in list(self.seen):
            current[name] = (at, seen)
        if len(current) < len(self.children):
            return None
        if any(seen != status for _, seen in current.values()):
            return None
        return {name: at for name, (at, _) in current.items()}

    def wait_settled(self, status: str, since: float, timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while (found := self.settled(status, since)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {status} after {timeout}s: {self.seen[-8:]}")
            time.sleep(0.05)
        return found


def run(plan: Plan, logs: Path) -> Report:
    cluster = Cluster.temporary()
    children: list[Child] = []
    try:
        cluster.create()
        servers, others = children_for(cluster.url(), logs)
        children = [*servers, *others]
        start_in_turn(children)
        return _drill(plan, cluster, servers, children, logs)
    finally:
        for child in children:
            child.stop()
        close_connections()
        cluster.close()


def _drill(
    plan: Plan, cluster: Cluster, servers: list[Child], children: list[Child], logs: Path
) -> Report:
    report = Report(plan=plan)
    load = DrillLoad(servers, plan.clients)
    with HealthWatch(children) as health:
        load.start()
        try:
            time.sleep(plan.before_seconds)
            _wait_writes(load, plan.min_writes // 2)
            killed = time.monotonic()
            cluster.kill_primary()
            time.sleep(max(0.0, plan.promote_after - (time.monotonic() - killed)))
            promoting = time.monotonic()
            cluster.promote_standby()
            promoted = time.monotonic()
            serving = health.wait_settled("SERVING", promoted, timeout=60)
            time.sleep(plan.after_seconds)
            _wait_writes(load, plan.min_writes)
        finally:
            load.stop()
        report.not_serving = _ms(health.first("NOT_SERVING", killed), killed)
        report.serving = _ms(serving, killed)
    report.promoting = (promoting - killed) * 1000
    report.promoted = (promoted - killed) * 1000
    acked = [c for c in load.calls if c.code == "OK" and c.method in WRITES]
    after = [c.ended for c in acked if c.ended >= promoted]
    report.first_write = (min(after) - killed) * 1000 if after else float("nan")
    report.acknowledged_writes = len(acked)
    _check(cluster, servers[0], load, report, logs, children)
    cluster.rejoin_old_primary()
    report.rejoined = cluster.standby.in_recovery()
    return report


def _wait_writes(load: Load, count: int, timeout: float = 120) -> None:
    """Load on until `count` writes are acknowledged (a busy machine takes longer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for c in list(load.calls) if c.code == "OK" and c.method in WRITES) >= count:
            return
        time.sleep(0.2)


def _ms(times: dict[str, float], since: float) -> dict[str, float]:
    return {name: (at - since) * 1000 for name, at in times.items()}


def _check(
    cluster: Cluster,
    server: Child,
    load: DrillLoad,
    report: Report,
    logs: Path,
    children: list[Child],
) -> None:
    url = cluster.url()
    acks = load.acks
    report.codes = dict(load.codes())
    report.replayed_differently = list(load.replayed_differently)
    wait_views(url, current_head(url))
    held, report.double_redemptions = store_facts(sql(url), list(acks.keys))
    report.lost_keys = len(acks.keys) - held
    leases = [uuid.UUID(lease) for lease in load.leases]
    row = (
        sql(url)
        .execute("SELECT count(*) FROM seat_leases WHERE lease_id = ANY(%s)", (leases,))
        .fetchone()
    )
    report.acknowledged_leases = len(leases)
    report.lost_leases = len(leases) - (int(row[0]) if row else 0)
    report.check_activations_and_logs(url, server, acks.activations, logs, children)


def main(argv: list[str] | None = None) -> int:
    parser = drill_parser("failover", __doc__)
    plan_of = plan_options(
        parser,
        Plan,
        ["before_seconds", "promote_after", "after_seconds", "clients", "min_writes"],
    )
    return printed_exit_code(run(plan_of(parser.parse_args(argv)), drill_logs("failover")))


if __name__ == "__main__":
    sys.exit(main())
