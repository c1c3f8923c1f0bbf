"""Webhooks against real Postgres and a real HTTP receiver: the router turns the store's log
into deliveries, the sender delivers them signed (checked by the receiver's own Standard
Webhooks verifier), retries, honours Retry-After, gives up after at least 3 days, stops at 410,
refuses private addresses at send time, and reminds each key once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import psycopg

from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.webhooks.router import Reminders, Router
from license_svc.webhooks.tables import WebhookTables
from license_svc.webhooks.worker import WebhookWorker
from tests.helpers import unique
from tests.support import FakeClock
from tests.webhook_receiver import HANG, Receiver
from tests.webhooks_support import FAR_AWAY, Hooks, hooks_for


def test_a_receiver_gets_signed_messages_of_its_resellers_keys_and_nothing_of_another(
    hooks: Hooks, receivers: Callable[..., Receiver], clock: FakeClock
) -> None:
    # Its one-month keys must crowd neither other tests' expiring lists nor the reminders test.
    clock.set(FAR_AWAY + timedelta(days=400))
    mine, theirs = unique("r"), unique("r")
    receiver, other = receivers(), receivers()
    hooks.endpoint(mine, receiver)
    hooks.endpoint(theirs, other)
    keys = hooks.issue(mine, 3, months=1)
    hooks.issue(theirs, 2)
    app = hooks.service.app
    app.activate(keys[0], "acct-1")
    app.revoke(keys[1], reason="refund", revoked_by="acme", by_ops=False)
    app.activate(keys[2], "acct-2")
    clock.advance(days=40)
    app.expire(keys[2])
    hooks.send()

    assert sorted(r.type for r in receiver.received) == [
        "batch.issued",
        "key.activated",
        "key.activated",
        "key.expired",
        "key.revoked",
    ]
    assert all(r.verified for r in receiver.received)
    assert {r.data["key_id"] for r in receiver.received if "key_id" in r.data} == {
        str(k) for k in keys
    }
    assert receiver.of_type("batch.issued")[0].data["count"] == 3
    assert [r.type for r in other.received] == ["batch.issued"]
    assert all(r.body["id"] == r.webhook_id for r in receiver.received + other.received)


def test_bodies_name_the_key_by_id_and_hint_and_never_hold_its_code(
    hooks: Hooks, receivers: Callable[..., Receiver]
) -> None:
    reseller = unique("r")
    receiver = receivers()
    hooks.endpoint(reseller, receiver)
    cmd = IssueKeys(reseller, Product.INTEGRATIONS, Tier.SCALE, 5, 12, 1, unique("q"))
    issued = hooks.service.app.issue_keys(cmd).keys[0]
    hooks.service.app.activate(issued.key_id, "acct-x")
    hooks.send()

    activated = receiver.of_type("key.activated")[0]
    assert activated.data["hint"] == issued.hint
    assert activated.data["account_id"] == "acct-x"
    assert activated.data["seats"] == 5 and activated.data["tier"] == "scale"
    texts = [str(r.body) for r in receiver.received]
    assert not any(issued.code in text or issued.code[4:] in text for text in texts)


def test_three_failures_then_success_is_one_message_with_one_webhook_id(
    hooks: Hooks, receivers: Callable[..., Receiver], clock: FakeClock
) -> None:
    reseller = unique("r")
    receiver = receivers(answers=[500, 500, 500])
    endpoint_id = hooks.endpoint(reseller, receiver, ["key.activated"])
    hooks.service.app.activate(hooks.issue(reseller, 1)[0], "acct-1")
    for _ in range(4):
        hooks.send()
        clock.advance(hours=1)  # past any backoff of the first tries

    assert receiver.requests == 4 and len(receiver.received) == 1
    assert len(set(receiver.ids)) == 1 and receiver.ids[0] == receiver.received[0].webhook_id
    delivery = hooks.delivery(endpoint_id)
    assert delivery["state"] == "delivered" and delivery["attempts"] == 4
    assert [a["status"] for a in delivery["recent"]] == [200, 500, 500, 500]


def test_a_failing_endpoint_is_retried_with_growing_waits_for_at_least_three_days(
    hooks: Hooks, receivers: Callable[..., Receiver], clock: FakeClock
) -> None:
    reseller = unique("r")
    receiver = receivers(then=500)
    endpoint_id = hooks.endpoint(reseller, receiver, ["key.activated"])
    hooks.service.app.activate(hooks.issue(reseller, 1)[0], "acct-1")
    hooks.route()
    first = clock()
    waits = []
    while hooks.delivery(endpoint_id)["state"] == "pending":
        hooks.sender.send_due(1_000)
        delivery = hooks.delivery(endpoint_id)
        waits.append(delivery["next_attempt_at"] - clock())
        clock.set(max(clock(), delivery["next_attempt_at"]))

    assert hooks.delivery(endpoint_id)["state"] == "failed"
    assert clock() - first >= timedelta(days=3)
    assert receiver.requests == len(waits) < 40
    assert waits[1] > waits[0] and max(waits) <= timedelta(hours=6)


def test_retry_after_is_honoured(
    hooks: Hooks, receivers: Callable[..., Receiver], clock: FakeClock
) -> None:
    reseller = unique("r")
    receiver = receivers(then=503)
    receiver.retry_after = "3600"
    endpoint_id = hooks.endpoint(reseller, receiver, ["key.activated"])
    hooks.service.app.activate(hooks.issue(reseller, 1)[0], "acct-1")
    hooks.send()

    assert hooks.delivery(endpoint_id)["next_attempt_at"] - clock() >= timedelta(hours=1)


def test_410_disables_the_endpoint_and_cancels_what_was_waiting_for_it(
    hooks: Hooks, receivers: Callable[..., Receiver]
) -> None:
    reseller = unique("r")
    receiver = receivers(then=410)
    endpoint_id = hooks.endpoint(reseller, receiver, ["key.activated"])
    keys = hooks.issue(reseller, 3)
    hooks.service.app.activate(keys[0], "acct-1")
    hooks.service.app.activate(keys[1], "acct-2")
    hooks.route()
    hooks.sender.send_due(1)  # one attempt: 410
    hooks.service.app.activate(keys[2], "acct-3")
    hooks.send()

    assert receiver.requests == 1
    [endpoint] = hooks.endpoints.list(reseller)
    assert endpoint.disabled_at is not None and "410" in (endpoint.disabled_reason or "")
    states = [
        d["state"] for d in hooks.endpoints.deliveries(endpoint_id, None, None, 10).deliveries
    ]
    assert sorted(states) == ["cancelled", "failed"]  # the third activation was never routed


def test_an_address_that_became_private_is_refused_at_send_time(
    service: Service, clock: FakeClock, receivers: Callable[..., Receiver]
) -> None:
    hooks = hooks_for(service, clock, send_private=False)
    reseller = unique("r")
    receiver = receivers()
    endpoint_id = hooks.endpoint(reseller, receiver, ["key.activated"])
    hooks.service.app.activate(hooks.issue(reseller, 1)[0], "acct-1")
    hooks.send()

    delivery = hooks.delivery(endpoint_id)
    assert receiver.requests == 0
    assert delivery["state"] == "pending" and delivery["last_error"].startswith("refused")
    hooks.sender.close()


def test_a_receiver_that_never_answers_costs_one_timeout_per_attempt(
    service: Service, clock: FakeClock, receivers: Callable[..., Receiver]
) -> None:
    hooks = hooks_for(service, clock, timeout=0.3)
    reseller = unique("r")
    receiver = receivers(then=HANG)
    endpoint_id = hooks.endpoint(reseller, receiver, ["key.activated"])
    hooks.service.app.activate(hooks.issue(reseller, 1)[0], "acct-1")
    hooks.send()

    delivery = hooks.delivery(endpoint_id)
    assert receiver.hanging == 1
    assert delivery["attempts"] == 1 and delivery["last_error"].startswith("timed out")
    hooks.sender.close()


def test_an_endpoint_that_never_answers_does_not_delay_another(
    service: Service, clock: FakeClock, receivers: Callable[..., Receiver]
) -> None:
    hooks = hooks_for(service, clock, timeout=60, per_endpoint=2)
    reseller = unique("r")
    stuck, healthy = receivers(then=HANG), receivers()
    hooks.endpoint(reseller, stuck, ["key.activated"])
    hooks.endpoint(reseller, healthy, ["key.activated"])
    worker = WebhookWorker(
        hooks.router,
        Reminders(hooks.tables, clock),
        hooks.sender,
        conninfo=service.settings.conninfo(),
        channel=service.app.store.channel_name,
        threads=4,
        poll=0.05,
    )
    worker.start()
    try:
        for key_id in hooks.issue(reseller, 6):
            hooks.service.app.activate(key_id, unique("acct"))
        healthy.wait_for(lambda r: len(r.received) == 6)
        stuck.wait_for(lambda r: r.hanging == 2)  # its two slots, still waiting
        assert stuck.received == [] and stuck.requests == 2
    finally:
        stuck.stop()  # releases the hanging requests, so the worker's threads can end
        worker.stop()
    assert all(r.verified for r in healthy.received)


def test_two_sweepers_remind_each_key_exactly_once_fourteen_days_before_its_end(
    make_service: Callable[..., Service],
    clock: FakeClock,
    receivers: Callable[..., Receiver],
    sql: psycopg.Connection,
) -> None:
    clock.set(FAR_AWAY)  # its keys end within 14 days of no other test's keys
    first, second = make_service(clock), make_service(clock)
    hooks = hooks_for(first, clock)
    hooks.route()
    reseller = unique("r")
    receiver = receivers()
    endpoint_id = hooks.endpoint(reseller, receiver, ["subscription.expiring_soon"])
    keys = hooks.issue(reseller, 20, months=1)
    for key_id in keys:
        first.app.activate(key_id, unique("acct"))  # Jan 31 → Feb 28 (clamped)
    hooks.route()
    clock.advance(days=14)  # Feb 14: 14 days before the end
    start = threading.Barrier(2)
    reminded: list[int] = []

    def sweep(service: Service) -> None:
        start.wait()
        reminded.append(Reminders(WebhookTables(service.datastore), clock).remind_once())

    threads = [threading.Thread(target=sweep, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hooks.send()

    assert sum(reminded) == 20
    assert Reminders(hooks.tables, clock).remind_once() == 0
    rows = sql.execute(
        "SELECT count(*), count(DISTINCT position) FROM webhook_deliveries WHERE endpoint_id = %s",
        (endpoint_id,),
    ).fetchone()
    assert rows == (20, 20)
    assert sorted(r.data["key_id"] for r in receiver.received) == sorted(str(k) for k in keys)
    assert all(r.data["days_left"] == 14 for r in receiver.received)
    hooks.sender.close()


def test_the_router_records_each_message_once_whatever_number_of_routers_run(
    make_service: Callable[..., Service], clock: FakeClock, sql: psycopg.Connection
) -> None:
    services = [make_service(clock) for _ in range(3)]
    hooks = hooks_for(services[0], clock)
    hooks.route()
    reseller = unique("r")
    endpoint_id = hooks.endpoints.create(reseller, "https://203.0.113.7/h", []).endpoint.endpoint_id
    for key_id in hooks.issue(reseller, 30):
        hooks.service.app.activate(key_id, unique("acct"))
    start = threading.Barrier(3)

    def route(service: Service) -> None:
        router = Router(WebhookTables(service.datastore), service.app, clock)
        start.wait()
        for _ in range(50):
            router.route_once(limit=7)

    threads = [threading.Thread(target=route, args=(s,)) for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hooks.route()

    count = sql.execute(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = %s", (endpoint_id,)
    ).fetchone()
    assert count == (31,)  # one batch.issued and 30 key.activated
    assert hooks.tables.position() == hooks.service.app.recorder.max_notification_id()
    hooks.sender.close()
