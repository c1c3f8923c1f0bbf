"""Several senders share the work: concurrent claims never lease one delivery twice, and a
lease that ran out (its sender died) is taken up by another sender."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import psycopg

from license_svc.bootstrap import Service
from license_svc.webhooks.sender import Claim
from tests.helpers import unique
from tests.support import FakeClock
from tests.webhooks_support import hooks_for


def test_racing_senders_never_lease_one_delivery_twice(
    make_service: Callable[..., Service], clock: FakeClock, sql: psycopg.Connection
) -> None:
    services = [make_service(clock) for _ in range(3)]
    parts = [hooks_for(s, clock) for s in services]
    parts[0].route()
    reseller = unique("r")
    endpoint_id = parts[0].endpoints.create(reseller, "https://93.184.215.14/x", [])
    for key_id in parts[0].issue(reseller, 60):
        parts[0].service.app.activate(key_id, unique("acct"))
    parts[0].route()
    wanted = {
        row[0]
        for row in sql.execute(
            "SELECT message_id FROM webhook_deliveries WHERE endpoint_id = %s",
            (endpoint_id.endpoint.endpoint_id,),
        ).fetchall()
    }
    start = threading.Barrier(3)
    claimed: list[list[Claim]] = [[], [], []]

    def claim(n: int) -> None:
        start.wait()
        for _ in range(20):
            claimed[n] += parts[n].sender.claim(5)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ours = [[c.message_id for c in found if c.message_id in wanted] for found in claimed]
    every = [mid for found in ours for mid in found]
    assert len(every) == len(set(every)) == len(wanted) == 61
    for part in parts:
        part.sender.close()


def test_a_lease_left_by_a_dead_sender_is_taken_up_after_it_runs_out(
    make_service: Callable[..., Service], clock: FakeClock
) -> None:
    dead, alive = (hooks_for(make_service(clock), clock) for _ in range(2))
    dead.route()
    reseller = unique("r")
    dead.endpoints.create(reseller, "https://93.184.215.14/x", ["key.activated"])
    dead.service.app.activate(dead.issue(reseller, 1)[0], "acct-1")
    dead.route()
    mine = [c for c in dead.sender.claim(1_000) if c.url.endswith("/x")]
    assert len(mine) == 1  # then the process dies without a word

    assert not [c for c in alive.sender.claim(1_000) if c.message_id == mine[0].message_id]
    clock.advance(seconds=dead.sender.policy.lease.total_seconds() + 1)
    taken = [c for c in alive.sender.claim(1_000) if c.message_id == mine[0].message_id]
    assert len(taken) == 1
    assert dead.sender.policy.lease > timedelta(seconds=3 * dead.sender.policy.timeout)
    dead.sender.close()
    alive.sender.close()
