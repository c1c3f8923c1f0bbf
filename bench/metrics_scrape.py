"""The first `/metrics` scrape of a large store (issue 17), measured, never asserted.

    python -m bench.metrics_scrape [--events 1000000] [--scrapes 3]

A fresh database gets one key issued and activated through a `serve` replica; its KeyIssued
event is then copied in SQL (new originator ids) until the store holds `--events` events: far
quicker than issuing a million keys through the API, and the scrape only counts events. No
projection worker runs, so the key catalog stays at position 0: the first scrape's key
counters read the whole store as the catalog's lag, the worst case (with a caught-up catalog
the first scrape reads only the lag). A fresh `serve` is then started and scraped `--scrapes`
times; printed: the store's size and each scrape's time and key counters.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
import psycopg

from bench.database import fresh_database, server_url
from bench.processes import ProcessGroup, free_port, service_env, start_group
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc

RESELLER = (("authorization", "Bearer dev-reseller-acme"),)
PORTAL = (("authorization", "Bearer dev-portal"),)
CHUNK = 200_000  # events copied per statement


def serve(url: str, logs: Path) -> tuple[ProcessGroup, str, int]:
    address, metrics_port = f"127.0.0.1:{free_port()}", free_port()
    env = service_env(url, address, 1)
    env["LICENSE_SVC_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    argv = [sys.executable, "-m", "license_svc.entrypoints.cli.main", "serve"]
    return start_group("serve", argv, env, address, 1, logs), address, metrics_port


def first_events(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        keys = pb_grpc.KeyServiceStub(channel)
        batch = keys.IssueKeys(
            pb.IssueKeysRequest(
                reseller_id="acme", product=pb.PRODUCT_INTEGRATIONS, tier=pb.TIER_GROWTH,
                seats=1, period_months=12, count=1, request_id="seed-metrics",
            ),
            metadata=RESELLER, timeout=60,
        )  # fmt: skip
        pb_grpc.ActivationServiceStub(channel).ActivateKey(
            pb.ActivateKeyRequest(
                code=batch.keys[0].code, account_id="acct-1", session_id="s-1",
                product=pb.PRODUCT_INTEGRATIONS,
            ),
            metadata=PORTAL, timeout=60,
        )  # fmt: skip


def grow(url: str, events: int) -> int:
    """Copy the first KeyIssued until the store holds `events` events; returns its size."""
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM licensing_events").fetchone()
            have = int(row[0]) if row else 0
            if have >= events:
                break
            conn.execute(
                "INSERT INTO licensing_events (originator_id, originator_version, topic, state)"
                " SELECT gen_random_uuid(), 1, topic, state FROM licensing_events,"
                " generate_series(1, %s) WHERE notification_id = ("
                " SELECT min(notification_id) FROM licensing_events WHERE topic LIKE %s)",
                (min(CHUNK, events - have), "%KeyIssued"),
            )
        conn.execute("VACUUM ANALYZE licensing_events")
    return have


def scrape(port: int) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as answer:
        text = answer.read().decode()
    took = time.perf_counter() - started
    found = {}
    for line in text.splitlines():
        if line.startswith(("license_svc_keys_", "license_svc_store_position")):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return took, found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=3)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-metrics-scrape-"))
    with fresh_database(server_url()) as url:
        group, address, _ = serve(url, logs)
        with group:
            first_events(address)
        size = grow(url, args.events)
        group, _, port = serve(url, logs)
        with group:
            for n in range(args.scrapes):
                took, found = scrape(port)
                issued = found.get("license_svc_keys_issued_total", -1)
                print(
                    f"scrape {n + 1} of a store of {size:,} events (catalog at position 0):"
                    f" {took:.3f} s; keys issued {issued:,.0f}"
                )


if __name__ == "__main__":
    main()
