"""`python -m bench.soak`: an hour's churn compressed into minutes; RSS, descriptors, threads.

A `serve` replica, a projection worker (`project`) and a sweeper (`expire`) run on a fresh
database under issue + activation load (`bench.chaos_parts.Load`) while watchers and audit
streams connect and leave without pause: each round opens a WatchSeatAllowance on an account
seen before and a following StreamEvents (filtered by that account every other round), reads
their first messages and cancels them — as Integrations replicas and auditors do on every
deploy. Every `--every` seconds (default 60: "per minute") it prints each process's RSS, open
file descriptors and threads; after the warm-up these should stay flat. Nothing is asserted.

    python -m bench.soak [--minutes 5] [--every 60] [--clients 1]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from pathlib import Path

import grpc
import psutil

from bench.chaos_parts import Child, Load
from bench.database import fresh_database, server_url
from bench.processes import BENCH_PEPPER, free_port
from license_svc.config import DEV_TOKENS
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc

AUDITOR = (("authorization", "Bearer dev-auditor"),)
INTEGRATIONS = (("authorization", "Bearer dev-integrations"),)


class Churn(threading.Thread):
    """Watchers and streams that open, read a little and leave, round after round."""

    def __init__(self, server: Child, accounts: list[str]) -> None:
        super().__init__(daemon=True)
        self._entitlements = pb_grpc.EntitlementServiceStub(server.channel)
        self._audit = pb_grpc.AuditServiceStub(server.channel)
        self._accounts = accounts
        self.stopping = threading.Event()
        self.rounds = 0
        self.errors: dict[str, int] = {}

    def run(self) -> None:
        rng = random.Random(17)
        while not self.stopping.is_set():
            account = rng.choice(self._accounts) if self._accounts else "soak-nobody"
            watch = self._entitlements.WatchSeatAllowance(
                pb.WatchSeatAllowanceRequest(account_id=account, product=pb.PRODUCT_INTEGRATIONS),
                metadata=INTEGRATIONS,
                timeout=30,
            )
            stream = self._audit.StreamEvents(
                pb.StreamEventsRequest(follow=True, account_id=account if self.rounds % 2 else ""),
                metadata=AUDITOR,
                timeout=30,
            )
            for call in (watch, stream):
                try:
                    next(call)
                except (grpc.RpcError, StopIteration) as error:
                    name = getattr(error, "code", lambda: None)()
                    key = str(name.name if name else type(error).__name__)
                    self.errors[key] = self.errors.get(key, 0) + 1
                call.cancel()
            self.rounds += 1
            self.stopping.wait(0.05)


def sample(children: list[Child]) -> str:
    parts = []
    for child in children:
        assert child.process is not None
        process = psutil.Process(child.process.pid)
        rss = process.memory_info().rss / (1024 * 1024)
        parts.append(
            f"{child.name} {rss:6.1f} MB {process.num_fds():4d} fds {process.num_threads():3d} thr"
        )
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--every", type=float, default=60)
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    with fresh_database(server_url()) as url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")},
            "LICENSE_SVC_DATABASE_URL": url,
            "LICENSE_SVC_PEPPER": BENCH_PEPPER,
            "LICENSE_SVC_TOKENS_FILE": str(DEV_TOKENS),
            "LICENSE_SVC_SWEEP_INTERVAL_SECONDS": "1",
            "LICENSE_SVC_METRICS_LISTEN": "127.0.0.1:0",
            "LICENSE_SVC_POOL_SIZE": "2",
            "LICENSE_SVC_POOL_MAX_OVERFLOW": "4",
        }
        port = free_port()
        server = Child(
            "serve", ["serve"], {**env, "LICENSE_SVC_LISTEN": f"127.0.0.1:{port}"}, port, logs
        )
        others = []
        for name, argv in (("project", ["project"]), ("expire", ["expire"])):
            port = free_port()
            health = {**env, "LICENSE_SVC_LISTEN": "127.0.0.1:0"}
            health["LICENSE_SVC_HEALTH_LISTEN"] = f"127.0.0.1:{port}"
            others.append(Child(name, argv, health, port, logs))
        children = [server, *others]
        try:
            for child in children:
                child.start()
                child.wait_health("SERVING")
            load = Load([server], args.clients)
            load.start()
            time.sleep(args.every / 4)  # some accounts to watch
            accounts = list({a for accts in load.acks.activations.values() for a in accts})
            churn = Churn(server, accounts[:200] or [f"acct-{i}" for i in range(50)])
            churn.start()
            started = time.monotonic()
            print(f"t=0 min  {sample(children)}", flush=True)
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(args.every)
                minutes = (time.monotonic() - started) / 60
                print(f"t={minutes:.1f} min  {sample(children)}  rounds={churn.rounds}", flush=True)
            churn.stopping.set()
            load.stop()
            print(f"churn errors: {churn.errors or 'none'}; calls: {dict(load.codes())}")
            print(f"logs: {logs}")
        finally:
            for child in children:
                child.stop()


if __name__ == "__main__":
    main()
