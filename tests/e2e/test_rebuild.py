"""`license-svc projections rebuild` under traffic, through real processes on a database of its
own: reads keep answering (and keep seeing their writes) while a view is rebuilt from position
0; the rebuilt tables equal the old ones (kept for the comparison), brought to the same position;
`projections prune` then drops the old ones."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from projections.registry import NAMES
from projections.workers.runner import close_runner, start_runner
from tests.helpers import unique
from tests.support import Client
from tests.views_support import (
    cli,
    differences,
    head,
    live_generations,
    position,
    server_with_worker,
    settings_for,
    wait_until,
)


@pytest.fixture
def client(own_database: str, tmp_path: Path) -> Iterator[Client]:
    with server_with_worker(own_database, tmp_path) as client:
        yield client


class Traffic(threading.Thread):
    """Activates fresh keys on one account and reads the allowance at each write's position."""

    def __init__(self, client: Client, codes: list[str]) -> None:
        super().__init__(daemon=True)
        self.client, self.codes = client, codes
        self.account = unique("acct")
        self.rounds = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        for code in self.codes:
            if self.stopping.is_set():
                return
            try:
                at = self.client.activate(code, self.account, session=unique("s")).position
                seen = self.client.entitlements.GetSeatAllowance(
                    pb.GetSeatAllowanceRequest(
                        account_id=self.account, product=pb.PRODUCT_INTEGRATIONS, min_position=at
                    ),
                    metadata=self.client.as_("integrations"),
                    timeout=30,
                )
                if seen.seats != self.rounds + 1:
                    self.failures.append(f"round {self.rounds}: {seen.seats} seats")
            except grpc.RpcError as error:
                self.failures.append(f"round {self.rounds}: {error.code()} {error.details()}")
            self.rounds += 1


@pytest.mark.slow
def test_reads_keep_answering_during_a_rebuild_and_the_rebuilt_views_equal_the_old(
    own_database: str, client: Client, tmp_path: Path
) -> None:
    for _ in range(3):  # enough history that the rebuild takes a while
        issued = client.issue(count=2_000, tier=pb.TIER_STARTER, seats=1)
    traffic = Traffic(client, [k.code for k in issued.keys])
    with psycopg.connect(own_database, autocommit=True) as sql:
        wait_until(lambda: len(live_generations(sql)) == len(NAMES), "views created")
        before = live_generations(sql)
        traffic.start()
        wait_until(lambda: traffic.rounds >= 5 or not traffic.is_alive(), "traffic flowing")
        done = cli(own_database, "projections", "rebuild", "all", "--keep-old")
        rounds_during_rebuild = traffic.rounds
        traffic.stopping.set()
        traffic.join(60)
        assert done.returncode == 0, done.stderr
        assert traffic.failures == []
        assert rounds_during_rebuild > 5

        after = live_generations(sql)
        target = head(sql)
        settings = settings_for(own_database, tmp_path / "var")
        for name in NAMES:
            assert after[name] == before[name] + 1
            # The old generation stopped at the switch: bring it to the head, then compare.
            runner = start_runner(settings, name, before[name])
            try:
                wait_until(at_head(sql, name, before[name], target), "old caught up")
            finally:
                close_runner(runner)
            wait_until(at_head(sql, name, after[name], target), "new caught up")
            assert differences(sql, name, before[name], after[name]) == {}
        pruned = cli(own_database, "projections", "prune")
        assert pruned.returncode == 0, pruned.stderr
        for name in NAMES:
            assert f"{name}: dropped generation {before[name]}" in pruned.stdout


def at_head(sql: psycopg.Connection, name: str, generation: int, target: int) -> Callable[[], bool]:
    return lambda: position(sql, name, generation) >= target
