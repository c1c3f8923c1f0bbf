"""A store of a million events, against a real `serve` (slow tests).

- 200 StreamEvents filtered by account, from position 0, read the whole store at once: every
  stream gets exactly its account's events, and the server's peak RSS stays within 500 MB.
  A stream holds one batch of the log at a time, and streams at the same position share one
  read of it and the key facts learned from it (`license_svc.reads.feed`), so the memory of
  200 streams is their gRPC state plus the feed's bounded shared batches, not 200 histories.
- The first `/metrics` scrape of that store answers with the store's counts.

The store is grown in SQL from events the API wrote (a key issued and one activated per
account, copied under new key ids): far quicker than a million API calls, and every copy is an
event the service decodes like its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc
from tests.helpers import EVENTS_TABLE
from tests.support import Client, server_process
from tests.views_support import fresh_database

pytestmark = pytest.mark.slow

EVENTS = 1_000_000
ACCOUNTS = 10
ACTIVATE_EVERY = 200  # one copied key in 200 is activated, on the accounts in turn
CHUNK = 100_000  # keys copied per statement
STREAMS = 200
PEAK_RSS_MB = 500


def account(i: int) -> str:
    return f"acct-large-{i}"


def grow(url: str) -> tuple[int, dict[str, int]]:
    """Copy the first KeyIssued and each account's KeyActivated until the store holds EVENTS
    events; returns its size and how many events each account's filter lets through."""
    expected = {account(i): 1 for i in range(ACCOUNTS)}  # the activations the API made
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TEMP TABLE template AS SELECT row_number() OVER (ORDER BY notification_id)"
            f" - 1 AS i, topic, state FROM {EVENTS_TABLE} WHERE topic LIKE '%.KeyActivated'"
        )
        row = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
        have = int(row[0]) if row else 0
        while have < EVENTS:
            keys = min(CHUNK, -(-(EVENTS - have) * ACTIVATE_EVERY // (ACTIVATE_EVERY + 1)))
            conn.execute("DROP TABLE IF EXISTS chunk")
            conn.execute(
                "CREATE TEMP TABLE chunk AS SELECT g, gen_random_uuid() AS id"
                " FROM generate_series(1, %s) AS g",
                (keys,),
            )
            conn.execute(
                f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state)"
                f" SELECT chunk.id, 1, first.topic, first.state FROM chunk, (SELECT topic, state"
                f" FROM {EVENTS_TABLE} WHERE topic LIKE '%.KeyIssued'"
                f" ORDER BY notification_id LIMIT 1) AS first ORDER BY chunk.g"
            )
            conn.execute(
                f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state)"
                f" SELECT chunk.id, 2, template.topic, template.state FROM chunk JOIN template"
                f" ON template.i = (chunk.g / {ACTIVATE_EVERY}) % {ACCOUNTS}"
                f" WHERE chunk.g % {ACTIVATE_EVERY} = 0 ORDER BY chunk.g"
            )
            for g in range(ACTIVATE_EVERY, keys + 1, ACTIVATE_EVERY):
                expected[account((g // ACTIVATE_EVERY) % ACCOUNTS)] += 1
            have += keys + keys // ACTIVATE_EVERY
        conn.execute(f"VACUUM ANALYZE {EVENTS_TABLE}")
    return have, expected


@pytest.fixture(scope="module")
def large_store(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, dict[str, int]]]:
    logs = tmp_path_factory.mktemp("large-store")
    with fresh_database(database_url) as url:
        with server_process(url, logs / "seed.log") as server:
            batch = server.client.issue(ACCOUNTS)
            for i, key in enumerate(batch.keys):
                server.client.activate(key.code, account(i), session=f"s-{i}")
        size, expected = grow(url)
        yield url, size, expected


class PeakRss:
    """A process's RSS sampled every 50 ms on a thread of its own, until stopped."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.before = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def read_to_the_end(address: str, wanted: list[tuple[str, str]]) -> list[list[int]]:
    """One stream per (role, account), 50 to a channel, all read at once: each's positions."""
    channels = [grpc.aio.insecure_channel(address) for _ in range(-(-len(wanted) // 50))]

    async def one(n: int, role: str, account_id: str) -> list[int]:
        stub = pb_grpc.AuditServiceStub(channels[n // 50])
        request = pb.StreamEventsRequest(account_id=account_id, after_position=0, follow=False)
        positions = []
        async for item in stub.StreamEvents(request, metadata=Client.as_(role), timeout=900):
            if item.WhichOneof("item") == "event":
                positions.append(item.event.position)
        return positions

    try:
        return list(await asyncio.gather(*(one(n, *w) for n, w in enumerate(wanted))))
    finally:
        for channel in channels:
            await channel.close(None)


@pytest.mark.timeout(900)  # about a minute alone; several beside two CPU hogs
def test_two_hundred_account_streams_read_a_million_events_within_the_memory_bound(
    large_store: tuple[str, int, dict[str, int]], tmp_path: Path
) -> None:
    url, size, expected = large_store
    # The default cap (200 streams, half of them per caller): two callers of a hundred each.
    wanted = [("auditor" if n % 2 else "ops", account(n % ACCOUNTS)) for n in range(STREAMS)]
    with server_process(url, tmp_path / "serve.log") as server:
        rss = PeakRss(server.process.pid)
        started = time.monotonic()
        try:
            results = asyncio.run(read_to_the_end(server.address, wanted))
        finally:
            rss.stop()
        took = time.monotonic() - started
    for (_, account_id), positions in zip(wanted, results, strict=True):
        assert len(positions) == expected[account_id]
        assert positions == sorted(set(positions))
    mb = 2**20
    print(
        f"\n{STREAMS} streams read {size:,} events in {took:.0f} s: server RSS"
        f" {rss.before / mb:.0f} MB before, peak {rss.peak / mb:.0f} MB"
        f" ({(rss.peak - rss.before) / STREAMS / 1024:.0f} KB per stream)"
    )
    assert size >= EVENTS
    assert rss.peak <= PEAK_RSS_MB * mb


def test_the_first_metrics_scrape_of_a_million_events_answers_with_the_stores_counts(
    large_store: tuple[str, int, dict[str, int]], tmp_path: Path
) -> None:
    url, size, _ = large_store
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT count(*) FILTER (WHERE topic LIKE '%.KeyIssued'),"
            f" count(*) FILTER (WHERE topic LIKE '%.KeyActivated') FROM {EVENTS_TABLE}"
        ).fetchone()
    assert row is not None
    with server_process(url, tmp_path / "serve.log") as server:
        started = time.monotonic()
        address = f"http://127.0.0.1:{server.metrics_port}/metrics"
        with urllib.request.urlopen(address, timeout=30) as answer:
            text = answer.read().decode()
        took = time.monotonic() - started
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }
    print(f"\nthe first scrape of a store of {size:,} events: {took:.3f} s")
    assert samples["license_svc_keys_issued_total"] == row[0]
    assert samples["license_svc_keys_activated_total"] == row[1]
