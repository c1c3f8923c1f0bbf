"""The dashboard's webhook section: a reseller sees the health of its own endpoints only, ops
every reseller's; every value escaped."""

from __future__ import annotations

from license_svc.access.auth import Principal, Role
from license_svc.bootstrap import Service
from license_svc.entrypoints.dashboard import render
from license_svc.entrypoints.dashboard.board import Filters, Reads
from tests.helpers import unique
from tests.support import FakeClock
from tests.webhooks_support import hooks_for


def test_a_reseller_sees_its_own_endpoints_health_and_ops_sees_every_resellers(
    service: Service, clock: FakeClock
) -> None:
    hooks = hooks_for(service, clock)
    mine, theirs = unique("r"), unique("r")
    my_endpoint = hooks.endpoints.create(mine, "https://93.184.215.14/m", []).endpoint
    their_endpoint = hooks.endpoints.create(theirs, "https://93.184.215.14/t", []).endpoint
    hooks.service.app.activate(hooks.issue(mine, 1)[0], "acct-1")
    hooks.route()  # one batch.issued and one key.activated wait for my endpoint
    reads = Reads(service.views, service.limiter, clock, service.app.recorder.max_notification_id)

    as_reseller = reads.board(Principal(Role.RESELLER, mine), Filters())
    [health] = as_reseller.webhooks
    assert health.endpoint_id == my_endpoint.endpoint_id and health.pending == 2
    page = render.board(as_reseller, logout_csrf="")
    assert my_endpoint.endpoint_id in page and their_endpoint.endpoint_id not in page

    as_ops = reads.board(Principal(Role.OPS), Filters())
    shown = {w.endpoint_id for w in as_ops.webhooks}
    assert {my_endpoint.endpoint_id, their_endpoint.endpoint_id} <= shown
    hooks.sender.close()
