"""GetSeatAllowance's cache misses and `min_position` waits run on threads of their own, never
more than the pool has connections, through a real channel to an in-process server: a burst of
waits past the head each ends within its deadline, and the threads stay within the bound."""

from __future__ import annotations

import threading
from collections.abc import Callable

import grpc

from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import unique
from tests.support import Client

POOL = 2
CALLS = 10


def miss_threads() -> int:
    return sum(t.name.startswith("allowance-read") for t in threading.enumerate())


def test_a_burst_of_min_position_waits_uses_at_most_one_thread_per_pooled_connection(
    make_service: Callable[..., Service], serve_in_process: Callable[[Service], Client]
) -> None:
    client = serve_in_process(make_service(pool_size=POOL))
    codes: list[str] = []
    most = 0

    def wait_far_ahead() -> None:
        try:
            client.entitlements.GetSeatAllowance(
                pb.GetSeatAllowanceRequest(
                    account_id=unique("acct"),
                    product=pb.PRODUCT_INTEGRATIONS,
                    min_position=10**12,  # never reached: the call waits its whole deadline
                ),
                metadata=client.as_("integrations"),
                timeout=1.5,
            )
            codes.append("OK")
        except grpc.RpcError as error:
            codes.append(error.code().name)

    calls = [threading.Thread(target=wait_far_ahead) for _ in range(CALLS)]
    for call in calls:
        call.start()
    while any(call.is_alive() for call in calls):
        most = max(most, miss_threads())
        calls[0].join(0.05)
    for call in calls:
        call.join()

    assert 1 <= most <= POOL
    assert sorted(set(codes)) == ["DEADLINE_EXCEEDED"]
