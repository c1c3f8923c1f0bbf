"""The router is a tracked subscription: deliveries and the tracking position commit together,
so a router that dies mid-transaction leaves nothing, and the next one records every message
once."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from license_svc.bootstrap import Service
from license_svc.webhooks.router import Router
from license_svc.webhooks.tables import WebhookTables
from tests.helpers import unique
from tests.support import FakeClock
from tests.webhooks_support import hooks_for


class Dies(Exception):
    pass


class DyingTables(WebhookTables):
    """Fails where the tracking position would be written: after the deliveries, before the
    commit (a crash at the worst moment)."""

    def _insert_tracking(self, curs: Any, tracking: Any) -> None:
        raise Dies()


def deliveries_of(sql: psycopg.Connection, endpoint_id: str) -> list[tuple[str, int]]:
    rows = sql.execute(
        "SELECT event_type, position FROM webhook_deliveries WHERE endpoint_id = %s"
        " ORDER BY position",
        (endpoint_id,),
    ).fetchall()
    return [(str(t), int(p)) for t, p in rows]


def test_a_router_that_dies_before_its_commit_leaves_nothing_and_the_next_records_all_once(
    service: Service, clock: FakeClock, sql: psycopg.Connection
) -> None:
    hooks = hooks_for(service, clock)
    hooks.route()
    reseller = unique("r")
    endpoint_id = hooks.endpoints.create(reseller, "https://93.184.215.14/r", []).endpoint
    for key_id in hooks.issue(reseller, 3):
        service.app.activate(key_id, unique("acct"))
    before = hooks.tables.position()

    with pytest.raises(Dies):
        Router(DyingTables(service.datastore), service.app, clock).route_once()
    assert deliveries_of(sql, endpoint_id.endpoint_id) == []
    assert hooks.tables.position() == before

    hooks.route()
    hooks.route()  # again: nothing new
    found = deliveries_of(sql, endpoint_id.endpoint_id)
    assert [t for t, _ in found] == ["batch.issued", *["key.activated"] * 3]
    assert len({p for _, p in found}) == 4
    hooks.sender.close()
