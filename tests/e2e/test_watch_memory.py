"""Watchers that come and go leave a server's memory where it was (a slow test).

Integrations replicas reconnect their watchers on every deploy. Each watch of an account with a
key has a deadline (the end of its period, a year away) in the server's clock heap; those
deadlines used to stay there until the period ended, so every round of reconnects grew the
server. Here 10,000 watchers open on 10,000 accounts with 12-month keys, each gets its
allowance, and all close, three rounds against one real `serve`: after each round the
server's RSS is within 10 % of its RSS after the first.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.processes import process_pool
from bench.watchers import WatchSpec, run_watchers
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import EVENTS_TABLE
from tests.support import Client, ServerProcess, WorkerProcess, server_process
from tests.views_support import fresh_database

pytestmark = pytest.mark.slow

ACCOUNTS = 10_000
ROUNDS = 3
PROCESSES = 2  # watcher processes, 5,000 streams each
GROWTH = 0.10  # RSS after a round, at most this much above the first round's


def seed(client: Client, url: str) -> int:
    """ACCOUNTS accounts, each with a 12-month key of its own; returns the store's head. One
    key is issued and activated through the API; the others are its two events copied in SQL
    under new key ids, each activation naming its own account (far quicker than 10,000 calls,
    and every copy is an event the service reads like its own)."""
    key = client.issue(1, period_months=12, seats=1).keys[0]
    client.activate(key.code, account(0), "s-0")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE copies AS SELECT g, gen_random_uuid() AS id"
            " FROM generate_series(1, %s) AS g",
            (ACCOUNTS - 1,),
        )
        named = "'\"acct-watch-' || lpad(copies.g::text, 5, '0') || '\"'"  # account(g)
        renamed = f"replace(convert_from(state, 'UTF8'), '\"{account(0)}\"', {named})"
        for version, topic, state in (
            (1, "KeyIssued", "state"),
            (2, "KeyActivated", f"convert_to({renamed}, 'UTF8')"),
        ):
            conn.execute(
                f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state)"
                f" SELECT copies.id, {version}, topic, {state} FROM copies, {EVENTS_TABLE}"
                f" WHERE topic LIKE '%.{topic}' ORDER BY copies.g"
            )
        row = conn.execute(f"SELECT max(notification_id) FROM {EVENTS_TABLE}").fetchone()
    assert row is not None
    return int(row[0])


def account(n: int) -> str:
    return f"acct-watch-{n:05d}"


def watches_ended(server: ServerProcess) -> float:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "grpc_server_handled_total"
        and sample.labels.get("grpc_method") == "WatchSeatAllowance"
    )


def one_round(pool: ProcessPoolExecutor, server: ServerProcess, folder: Path) -> None:
    """Every account watched at once until each has its allowance, then every watch closed."""
    hold = folder / f"hold-{uuid.uuid4().hex}"
    readies = [folder / f"ready-{uuid.uuid4().hex}" for _ in range(PROCESSES)]
    futures = [
        pool.submit(
            run_watchers,
            WatchSpec(
                server.address,
                [account(n) for n in range(i, ACCOUNTS, PROCESSES)],
                0,
                1,
                str(ready),
                str(hold),
                timeout=600,
            ),
        )
        for i, ready in enumerate(readies)
    ]
    while not all(ready.exists() for ready in readies):
        for future in futures:
            if future.done():
                future.result()  # raises what the watcher process raised
        time.sleep(0.1)
    hold.touch()
    results = [future.result() for future in futures]
    assert sum(result.opened for result in results) == ACCOUNTS
    assert sum(result.failures for result in results) == 0, results[0].failure_sample


@pytest.mark.timeout(900)  # about two minutes alone
def test_ten_thousand_watchers_opened_and_closed_three_times_leave_the_rss_flat(
    database_url: str, tmp_path: Path
) -> None:
    env = {"LICENSE_SVC_MAX_STREAMS": "20000", "LICENSE_SVC_STREAM_SHARE_PERCENT": "100"}
    with (
        fresh_database(database_url) as url,
        server_process(url, tmp_path / "serve.log", **env) as server,
    ):
        worker = WorkerProcess(url, tmp_path / "worker.log")
        try:
            last = seed(server.client, url)
            server.client.entitlements.GetSeatAllowance(  # the views have every key
                pb.GetSeatAllowanceRequest(
                    account_id=account(ACCOUNTS - 1),
                    product=pb.PRODUCT_INTEGRATIONS,
                    min_position=last,
                ),
                metadata=Client.as_("integrations"),
                timeout=120,
            )
        finally:
            worker.stop()
        process = psutil.Process(server.process.pid)
        before = process.memory_info().rss
        after: list[int] = []
        with process_pool(PROCESSES) as pool:  # spawned: a forked gRPC client can hang
            for n in range(1, ROUNDS + 1):
                one_round(pool, server, tmp_path)
                while watches_ended(server) < n * ACCOUNTS:  # the server let every one go
                    time.sleep(0.1)
                after.append(process.memory_info().rss)
    mb = 2**20
    print(
        f"\nserver RSS {before / mb:.0f} MB before; after each round of {ACCOUNTS:,} watchers:"
        f" {', '.join(f'{rss / mb:.0f} MB' for rss in after)}"
    )
    assert all(rss <= after[0] * (1 + GROWTH) for rss in after[1:])
