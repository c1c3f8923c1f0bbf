"""The database made unreachable (a TCP proxy the test cuts, never the shared PostgreSQL):
health turns NOT_SERVING, calls answer UNAVAILABLE with RetryInfo instead of hanging, and the
server, the projection worker and the sweeper are back once the database is — every pool with
them: the first heartbeat after the outage (its own pool, on the event loop) is answered.

Bounds here are deadlines that prove "never hangs"; the recovery times themselves are measured
and printed by `python -m bench.chaos`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from bench.faults import DatabaseProxy
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.chaos.probes import eventually, health_of
from tests.e2e.seats_support import acquire, renew
from tests.helpers import rich, unique
from tests.support import Client, ServerProcess, SweeperProcess, WorkerProcess

pytestmark = pytest.mark.slow

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"


@pytest.fixture
def proxy(database_url: str) -> Iterator[DatabaseProxy]:
    proxy = DatabaseProxy(database_url)
    yield proxy
    proxy.close()


def test_an_outage_turns_health_and_calls_unavailable_and_everything_heals(
    proxy: DatabaseProxy, tmp_path: Path
) -> None:
    server = ServerProcess(proxy.url, tmp_path / "server.log")
    worker = WorkerProcess(proxy.url, tmp_path / "worker.log")
    sweeper = SweeperProcess(
        proxy.url, tmp_path / "sweeper.log", LICENSE_SVC_SWEEP_INTERVAL_SECONDS="1"
    )
    client = server.client
    try:
        account = unique("acct")
        key = client.issue(1).keys[0]
        position = client.activate(key.code, account).position
        client.entitlements.GetSeatAllowance(  # the allowance view shows the seat
            pb.GetSeatAllowanceRequest(
                account_id=account, product=pb.PRODUCT_INTEGRATIONS, min_position=position
            ),
            metadata=client.as_("integrations"),
            timeout=30,
        )
        lease = acquire(client, account, ttl=600).lease
        assert renew(client, [lease.lease_id]).leases[0].renewed  # the heartbeats' pool is open

        proxy.cut()
        for process in (server, worker, sweeper):
            eventually(status_is(process.client, NOT_SERVING), within=30)
        for _ in range(5):
            with pytest.raises(grpc.RpcError) as failed:
                client.validate(key.code, account, unique("sess"))
            answer = rich(failed.value)
            assert answer.code == grpc.StatusCode.UNAVAILABLE  # not DEADLINE_EXCEEDED: no hang
            assert answer.retry_delay is not None
        assert health_of(client) == NOT_SERVING  # health still answers during the outage

        proxy.restore()
        for process in (server, worker, sweeper):
            eventually(status_is(process.client, SERVING), within=30)
        # The outage broke the heartbeats' idle connection; the monitor dropped it on the way
        # back up, so the first heartbeat is answered (not failed once, then retried).
        assert renew(client, [lease.lease_id]).leases[0].renewed
        fresh = eventually(lambda: _issue(client), within=30)
        assert fresh is not None
        activated = client.activate(fresh.code, account)
        # The worker is back: the allowance view reaches the activation's position.
        allowance = client.entitlements.GetSeatAllowance(
            pb.GetSeatAllowanceRequest(
                account_id=account, product=pb.PRODUCT_INTEGRATIONS, min_position=activated.position
            ),
            metadata=client.as_("integrations"),
            timeout=30,
        )
        assert allowance.position >= activated.position
        text = server.log_text()
        assert "Traceback" not in text
        assert "INTERNAL" not in text and "UNKNOWN" not in text
    finally:
        for process in (sweeper, worker, server):
            process.stop()


def status_is(client: Client, wanted: str) -> Callable[[], bool]:
    return lambda: health_of(client) == wanted


def _issue(client: Client) -> pb.IssuedKey | None:
    try:
        key: pb.IssuedKey = client.issue(1).keys[0]
        return key
    except grpc.RpcError:
        time.sleep(0.1)
        return None
