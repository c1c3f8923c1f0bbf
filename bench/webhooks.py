"""`python -m bench.webhooks [--keys N] [--lag-rounds N]` (`make bench-webhooks`): how fast the
webhooks process delivers to a local receiver. Printed, never asserted.

- Throughput: N keys are activated while no sender runs; then `license-svc webhooks` starts and
  the clock runs until the receiver has every `key.activated` (routing included): deliveries/s.
- Lag: with the sender running, keys are activated one at a time; each activation's commit (its
  `activate` returned) to the arrival of its webhook at the receiver: p50 / p99.

A fresh database on the server of LICENSE_SVC_TEST_DATABASE_URL (else an embedded PostgreSQL),
dropped afterwards; the receiver is an `http.server` thread on 127.0.0.1 (the private switch on).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import database
from bench.stats import percentile
from license_svc import bootstrap, config
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys

PEPPER = "bench-pepper-not-a-secret-0123456789"


class Arrivals:
    """A receiver that answers 200 and notes when each key's activation arrived."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = threading.Condition()
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                if body["type"] == "key.activated":
                    with arrivals.changed:
                        arrivals.at.setdefault(body["data"]["key_id"], time.monotonic())
                        arrivals.changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.at) < count and time.monotonic() < deadline:
                self.changed.wait(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2_000, help="deliveries for throughput")
    parser.add_argument("--lag-rounds", type=int, default=200, help="activations timed one by one")
    parser.add_argument(
        "--per-endpoint", type=int, default=4, help="LICENSE_SVC_WEBHOOK_PER_ENDPOINT"
    )
    args = parser.parse_args(argv)
    with database.fresh_database(database.server_url()) as url:
        return _run(url, args.keys, args.lag_rounds, args.per_endpoint)


def _run(url: str, keys: int, rounds: int, per_endpoint: int) -> int:
    env = {
        "LICENSE_SVC_DATABASE_URL": url,
        "LICENSE_SVC_PEPPER": PEPPER,
        "LICENSE_SVC_TOKENS_FILE": str(config.DEV_TOKENS),
        "LICENSE_SVC_WEBHOOK_ALLOW_PRIVATE": "on",
        "LICENSE_SVC_METRICS_LISTEN": "",
        "LICENSE_SVC_WEBHOOK_PER_ENDPOINT": str(per_endpoint),
    }
    service = bootstrap.build(config.load(env))
    receiver = Arrivals()
    assert service.webhooks is not None
    service.webhooks.create(
        "bench", f"http://127.0.0.1:{receiver.server.server_address[1]}/hooks", ["key.activated"]
    )
    app = service.app
    cmd = IssueKeys("bench", Product.INTEGRATIONS, Tier.GROWTH, 1, 12, keys + rounds, "bench-1")
    issued = app.issue_keys(cmd).keys
    for n, key in enumerate(issued[:keys]):
        app.activate(key.key_id, f"acct-{n}")
    log = Path(tempfile.mkdtemp(prefix="bench-webhooks-")) / "webhooks.log"
    sender = subprocess.Popen(
        [sys.executable, "-m", "license_svc.entrypoints.cli.main", "webhooks"],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        started = time.monotonic()
        receiver.wait(keys)
        took = time.monotonic() - started
        arrived = sorted(receiver.at.values())
        steady = (len(arrived) - 1) / max(1e-9, arrived[-1] - arrived[0])
        print(f"throughput to one endpoint ({per_endpoint} in flight): {len(arrived)} deliveries,"
              f" {steady:.0f}/s from the first arrival to the last;"
              f" {len(arrived) / took:.0f}/s counting the process's start")  # fmt: skip
        lags = []
        for n, key in enumerate(issued[keys:]):
            app.activate(key.key_id, f"lag-{n}")
            committed = time.monotonic()
            receiver.wait(keys + n + 1, timeout=30)
            at = receiver.at.get(str(key.key_id))
            if at is not None:
                lags.append((at - committed) * 1000)
        lags.sort()
        print(f"lag commit → arrival, {len(lags)} activations one by one:"
              f" p50 {percentile(lags, 50):.1f} ms, p99 {percentile(lags, 99):.1f} ms")  # fmt: skip
    finally:
        sender.terminate()
        sender.wait(30)
        receiver.server.shutdown()
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
