"""The webhooks' stated bounds: an answer is read up to MAX_BODY, a reseller keeps at most
MAX_ENDPOINTS endpoints, finished deliveries are deleted after the retention (pending ones
never)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from license_svc.webhooks.endpoints import MAX_ENDPOINTS, TooManyEndpoints
from tests.helpers import unique
from tests.support import FakeClock
from tests.webhook_receiver import Receiver
from tests.webhooks_support import Hooks


def test_a_huge_error_answer_is_read_only_up_to_a_small_bound(
    hooks: Hooks, receivers: Callable[..., Receiver]
) -> None:
    reseller = unique("r")
    receiver = receivers(then=500)
    receiver.body = b"x" * 20_000_000  # 20 MB the sender must not read
    endpoint_id = hooks.endpoint(reseller, receiver, ["key.activated"])
    hooks.service.app.activate(hooks.issue(reseller, 1)[0], "acct-1")
    hooks.send()

    delivery = hooks.delivery(endpoint_id)
    assert delivery["last_status"] == 500 and delivery["state"] == "pending"
    assert len(delivery["last_error"]) <= 520


def test_a_reseller_keeps_at_most_twenty_endpoints(hooks: Hooks) -> None:
    reseller = unique("r")
    for n in range(MAX_ENDPOINTS):
        hooks.endpoints.create(reseller, f"https://93.184.215.14/{n}", [])
    with pytest.raises(TooManyEndpoints):
        hooks.endpoints.create(reseller, "https://93.184.215.14/one-more", [])
    first = hooks.endpoints.list(reseller)[0]
    hooks.endpoints.delete(first.endpoint_id, reseller)
    hooks.endpoints.create(reseller, "https://93.184.215.14/again", [])


def test_finished_deliveries_go_after_the_retention_and_pending_ones_stay(
    hooks: Hooks, receivers: Callable[..., Receiver], clock: FakeClock
) -> None:
    reseller = unique("r")
    done, failing = receivers(), receivers(then=500)
    done_id = hooks.endpoint(reseller, done, ["key.activated"])
    failing_id = hooks.endpoint(reseller, failing, ["key.activated"])
    hooks.service.app.activate(hooks.issue(reseller, 1)[0], "acct-1")
    hooks.send()
    clock.advance(days=31)

    while hooks.tables.purge_finished(clock() - timedelta(days=30), limit=2):
        pass

    assert hooks.endpoints.deliveries(done_id, None, None, 10).deliveries == []
    assert [
        d["state"] for d in hooks.endpoints.deliveries(failing_id, None, None, 10).deliveries
    ] == ["pending"]
