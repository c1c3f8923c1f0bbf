"""Server memory under many account-filtered StreamEvents read from position 0 (issue 17).

    python -m bench.stream_memory [--events 50000] [--streams 50]

A fresh database is seeded through a `serve` replica (IssueKeys in batches of 10,000; one key
in 50 activated, spread over ten accounts), then `--streams` StreamEvents, each filtered by one
of those accounts, read the whole store at once. The replica's RSS is sampled every 0.25 s;
printed: the RSS before, the peak, and the peak's growth per stream. Nothing is asserted.
`STREAM_MEMORY_PYTHONPATH=DIR` runs the replica on another copy of the sources (a before/after).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import psutil

from bench.database import fresh_database, server_url
from bench.processes import free_port, service_env, start_group
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc

ACCOUNTS = 10
AUDITOR = (("authorization", "Bearer dev-auditor"),)
RESELLER = (("authorization", "Bearer dev-reseller-acme"),)
PORTAL = (("authorization", "Bearer dev-portal"),)


def seed(channel: grpc.Channel, events: int) -> None:
    keys, activation = pb_grpc.KeyServiceStub(channel), pb_grpc.ActivationServiceStub(channel)
    issued, n = 0, 0
    while issued < events:
        count = min(10_000, events - issued)
        batch = keys.IssueKeys(
            pb.IssueKeysRequest(
                reseller_id="acme", product=pb.PRODUCT_INTEGRATIONS, tier=pb.TIER_GROWTH,
                seats=1, period_months=12, count=count, request_id=f"seed-{issued}",
            ),
            metadata=RESELLER, timeout=300,
        )  # fmt: skip
        issued += count
        for key in batch.keys[::50]:
            activation.ActivateKey(
                pb.ActivateKeyRequest(
                    code=key.code, account_id=f"acct-{n % ACCOUNTS}", session_id=f"s-{n}",
                    product=pb.PRODUCT_INTEGRATIONS,
                ),
                metadata=PORTAL, timeout=60,
            )  # fmt: skip
            n += 1


def read_all(channel: grpc.Channel, account: str, sent: list[int]) -> None:
    audit = pb_grpc.AuditServiceStub(channel)
    request = pb.StreamEventsRequest(after_position=0, account_id=account)
    sent.append(sum(1 for _ in audit.StreamEvents(request, metadata=AUDITOR, timeout=3600)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--streams", type=int, default=50)
    args = parser.parse_args()
    with fresh_database(server_url()) as url:
        address = f"127.0.0.1:{free_port()}"
        env = service_env(url, address, 1)
        env["LICENSE_SVC_MAX_STREAMS"] = str(max(200, 2 * args.streams))
        env["LICENSE_SVC_STREAM_SHARE_PERCENT"] = "100"
        other = os.environ.get("STREAM_MEMORY_PYTHONPATH")
        if other:
            env["PYTHONPATH"] = other
        argv = [sys.executable, "-m", "license_svc.entrypoints.cli.main", "serve"]
        logs = Path(tempfile.mkdtemp(prefix="bench-stream-memory-"))
        with start_group("serve", argv, env, address, 1, logs) as group:
            server = psutil.Process(group.pids[0])
            with grpc.insecure_channel(address) as channel:
                seed(channel, args.events)
                before = server.memory_info().rss
                sent: list[int] = []
                readers = [
                    threading.Thread(target=read_all, args=(channel, f"acct-{i % ACCOUNTS}", sent))
                    for i in range(args.streams)
                ]
                started = time.monotonic()
                for reader in readers:
                    reader.start()
                peak = before
                while any(reader.is_alive() for reader in readers):
                    peak = max(peak, server.memory_info().rss)
                    time.sleep(0.25)
                took = time.monotonic() - started
        mb = 1024 * 1024
        print(
            f"{args.streams} streams x {args.events} events ({other or 'this tree'}):"
            f" RSS {before / mb:.0f} MB before, peak {peak / mb:.0f} MB"
            f" (+{(peak - before) / mb / args.streams:.2f} MB per stream), {took:.0f} s,"
            f" {sum(sent)} messages"
        )


if __name__ == "__main__":
    main()
