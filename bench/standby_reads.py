"""`python -m bench.standby_reads` (`make bench-standby`): the point of reading from standbys.

A primary and a streaming standby (`bench.replication`); one server replica with its account
cache off (every GetSeatAllowance a cold read of the allowance view), first reading views on
the primary, then with `LICENSE_SVC_READ_DATABASE_URL` on the standby. At concurrency 32 it
prints reads/s and the CPU each read costs the primary's PostgreSQL (and the standby's).
Printed, not asserted.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

import grpc
import psutil

from bench.chaos import close_connections, current_head, wait_views
from bench.chaos_parts import Child, child_env, drill_logs, drill_parser
from bench.processes import free_port
from bench.replication import Cluster, Node
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc

PORTAL = (("authorization", "Bearer dev-portal"),)
ACME = (("authorization", "Bearer dev-reseller-acme"),)
INTEGRATIONS = (("authorization", "Bearer dev-integrations"),)


def server(url: str, logs: Path, name: str, **extra: str) -> Child:
    port = free_port()
    env = {
        **child_env(url),
        "LICENSE_SVC_LISTEN": f"127.0.0.1:{port}",
        "LICENSE_SVC_RUN_PROJECTIONS": "1",
        "LICENSE_SVC_CACHE_ENTRIES": "0",  # every read goes to the database
        **extra,
    }
    return Child(name, ["serve"], env, port, logs)


def seed(child: Child, accounts: int) -> list[str]:
    keys = pb_grpc.KeyServiceStub(child.channel)
    activation = pb_grpc.ActivationServiceStub(child.channel)
    names: list[str] = []
    while len(names) < accounts:
        issued = keys.IssueKeys(
            pb.IssueKeysRequest(
                reseller_id="acme",
                product=pb.PRODUCT_INTEGRATIONS,
                tier=pb.TIER_GROWTH,
                seats=3,
                period_months=12,
                count=min(100, accounts - len(names)),
                request_id=f"standby-bench-{len(names)}-{random.random()}",
            ),
            metadata=ACME,
            timeout=60,
        )
        for key in issued.keys:
            account = f"acct-{len(names)}"
            activation.ActivateKey(
                pb.ActivateKeyRequest(
                    code=key.code,
                    account_id=account,
                    session_id="s-1",
                    product=pb.PRODUCT_INTEGRATIONS,
                ),
                metadata=PORTAL,
                timeout=30,
            )
            names.append(account)
    return names


def cpu_seconds(node: Node) -> dict[int, float]:
    """CPU seconds of a server's postmaster and every process under it."""
    pid = int((node.data / "postmaster.pid").read_text().split()[0])
    found = {}
    postmaster = psutil.Process(pid)
    for process in [postmaster, *postmaster.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        found[process.pid] = times.user + times.system
    return found


def used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def read_for(child: Child, accounts: list[str], seconds: float, concurrency: int) -> int:
    stub = pb_grpc.EntitlementServiceStub(child.channel)
    stop = time.monotonic() + seconds
    counts = [0] * concurrency

    def reader(index: int) -> None:
        rng = random.Random(index)
        while time.monotonic() < stop:
            request = pb.GetSeatAllowanceRequest(
                account_id=rng.choice(accounts),
                product=pb.PRODUCT_INTEGRATIONS,
                connections_in_use=0,
            )
            try:
                stub.GetSeatAllowance(request, metadata=INTEGRATIONS, timeout=10)
            except grpc.RpcError:
                continue
            counts[index] += 1

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def run(accounts: int, seconds: float, concurrency: int, logs: Path) -> None:
    cluster = Cluster.temporary()
    children: list[Child] = []
    try:
        cluster.create(synchronous=False)
        url = cluster.primary.url(cluster.dbname)
        seeder = server(url, logs, "seed")
        children.append(seeder)
        seeder.start()
        seeder.wait_health("SERVING", timeout=120)
        names = seed(seeder, accounts)
        wait_views(url, current_head(url))
        cluster.wait_replayed()
        seeder.stop()
        for mode, extra in (
            ("primary", {}),
            ("standby", {"LICENSE_SVC_READ_DATABASE_URL": cluster.standby_url()}),
        ):
            child = server(url, logs, f"reads-{mode}", **extra)
            children.append(child)
            child.start()
            child.wait_health("SERVING", timeout=120)
            read_for(child, names, 1.0, concurrency)  # connections open, code warm
            primary, standby = cpu_seconds(cluster.primary), cpu_seconds(cluster.standby)
            reads = read_for(child, names, seconds, concurrency)
            on_primary = used(primary, cpu_seconds(cluster.primary))
            on_standby = used(standby, cpu_seconds(cluster.standby))
            child.stop()
            per_read = 1000 / max(1, reads)
            print(
                f"standby-reads: views on the {mode:7}: {reads / seconds:7.0f} GetSeatAllowance/s"
                f" (c={concurrency}, cache off); PostgreSQL CPU per read: primary"
                f" {on_primary * per_read:.3f} ms, standby {on_standby * per_read:.3f} ms"
            )
    finally:
        for child in children:
            child.stop()
        close_connections()
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = drill_parser("standby_reads", __doc__)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    run(args.accounts, args.seconds, args.concurrency, drill_logs("standby-reads"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
