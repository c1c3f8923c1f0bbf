"""View reads from a standby (`LICENSE_SVC_READ_DATABASE_URL`): with the standby's replay held
back, a read with `min_position` is never answered from before that position (it waits for the
standby); with its replay paused, the primary answers after a short wait; with the standby
stopped, reads are answered by the primary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.replication import Cluster
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import unique
from tests.support import Client, ServerProcess
from tests.views_support import SMALL_POOLS

pytestmark = pytest.mark.slow

REPLAY_DELAY = "200ms"
ROUNDS = 12


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    cluster = Cluster.temporary()
    try:
        cluster.create(synchronous=False)
        # The standby applies every commit REPLAY_DELAY late: always behind the primary.
        cluster.standby.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = '{REPLAY_DELAY}'")
        cluster.standby.execute("SELECT pg_reload_conf()")
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def server(cluster: Cluster, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        cluster.primary.url(cluster.dbname),
        tmp_path / "server.log",
        LICENSE_SVC_READ_DATABASE_URL=cluster.standby_url(),
        LICENSE_SVC_RUN_PROJECTIONS="1",
        **SMALL_POOLS,
    )
    yield server
    server.stop()


def allowance(client: Client, account: str, min_position: int) -> pb.SeatAllowance:
    answer: pb.SeatAllowance = client.entitlements.GetSeatAllowance(
        pb.GetSeatAllowanceRequest(
            account_id=account,
            product=pb.PRODUCT_INTEGRATIONS,
            connections_in_use=0,
            min_position=min_position,
        ),
        metadata=client.as_("integrations"),
        timeout=30,
    )
    return answer


def server_connections_on_the_standby(cluster: Cluster) -> int:
    rows = cluster.standby.execute(
        "SELECT count(*) FROM pg_stat_activity"
        f" WHERE datname = '{cluster.dbname}' AND backend_type = 'client backend'"
        " AND pid <> pg_backend_pid()"
    )
    return int(rows[0][0])


def test_a_read_through_a_lagging_standby_is_never_older_than_its_min_position(
    cluster: Cluster, server: ServerProcess
) -> None:
    client = server.client
    account = unique("acct")
    issued = client.issue(count=ROUNDS, tier=pb.TIER_STARTER, seats=1, period_months=12)
    for round_number, key in enumerate(issued.keys, start=1):
        position = client.activate(key.code, account, session=f"s-{round_number}").position
        seen = allowance(client, account, position)
        assert seen.position >= position
        assert seen.seats == round_number  # the answer includes this round's activation
    assert server_connections_on_the_standby(cluster) > 0  # the standby answered them


def test_with_the_standby_stopped_reads_are_answered_by_the_primary(
    cluster: Cluster, server: ServerProcess
) -> None:
    client = server.client
    account = unique("acct")
    key = client.issue(count=1, tier=pb.TIER_STARTER, seats=1).keys[0]
    position = client.activate(key.code, account).position
    cluster.standby.stop()

    seen = allowance(client, account, position)

    assert seen.position >= position and seen.seats == 1


def test_with_the_standbys_replay_paused_a_min_position_read_is_answered_by_the_primary(
    cluster: Cluster, server: ServerProcess
) -> None:
    client = server.client
    account = unique("acct")
    key = client.issue(count=1, tier=pb.TIER_STARTER, seats=1).keys[0]
    cluster.standby.execute("SELECT pg_wal_replay_pause()")
    position = client.activate(key.code, account).position

    seen = allowance(client, account, position)  # not UNAVAILABLE: the primary has it

    assert seen.position >= position and seen.seats == 1
