"""Read-your-writes through real processes: a `serve` replica answers reads while the views are
kept by a `license-svc project` worker in another process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import unique
from tests.support import Client, ServerProcess
from tests.views_support import SMALL_POOLS, server_with_worker

ROUNDS = 200


@pytest.fixture
def server_and_worker(database_url: str, tmp_path: Path) -> Iterator[Client]:
    with server_with_worker(database_url, tmp_path) as client:
        yield client


def test_every_activation_is_seen_by_the_next_allowance_read_at_its_position(
    server_and_worker: Client,
) -> None:
    client = server_and_worker
    issued = client.issue(count=ROUNDS, tier=pb.TIER_STARTER, seats=1, period_months=12)
    account = unique("acct")
    for round_number, key in enumerate(issued.keys, start=1):
        position = client.activate(key.code, account, session=f"s-{round_number}").position
        seen = client.entitlements.GetSeatAllowance(
            pb.GetSeatAllowanceRequest(
                account_id=account,
                product=pb.PRODUCT_INTEGRATIONS,
                connections_in_use=round_number - 1,
                min_position=position,
            ),
            metadata=client.as_("integrations"),
            timeout=30,
        )
        assert (seen.seats, seen.remaining, seen.can_create_connection) == (round_number, 1, True)
        assert seen.position >= position


def test_a_replica_told_to_run_the_projections_keeps_the_views_itself(
    database_url: str, tmp_path: Path
) -> None:
    env = {"LICENSE_SVC_RUN_PROJECTIONS": "1", "LICENSE_SVC_RUN_SWEEPER": "1", **SMALL_POOLS}
    server = ServerProcess(database_url, tmp_path / "server.log", **env)
    try:
        client = server.client
        issued = client.issue(count=1, tier=pb.TIER_SCALE, seats=4)
        account = unique("acct")
        position = client.activate(issued.keys[0].code, account).position
        summary = client.entitlements.GetSubscriptionSummary(
            pb.GetSubscriptionSummaryRequest(
                account_id=account, product=pb.PRODUCT_INTEGRATIONS, min_position=position
            ),
            metadata=client.as_("portal"),
            timeout=30,
        )
        assert (summary.active, summary.tier, summary.seats) == (True, pb.TIER_SCALE, 4)
    finally:
        assert server.stop() == 0
