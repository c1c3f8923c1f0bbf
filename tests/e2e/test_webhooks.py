"""WebhookService and the webhooks process through real servers, a real gRPC channel, real
Postgres and a real HTTP receiver that checks every signature by its own Standard Webhooks
verifier: roles, the sealed secret, delivery, paging, redelivery, metrics and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
import psycopg
import pytest

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.support import TOKENS, Client, ServerProcess
from tests.webhook_receiver import Receiver

T = TypeVar("T")
PRIVATE_ON = {"LICENSE_SVC_WEBHOOK_ALLOW_PRIVATE": "on"}


@pytest.fixture(scope="module")
def hook_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server that runs the webhooks beside it and may call 127.0.0.1 (development)."""
    log_path = tmp_path_factory.mktemp("hooks") / "server.log"
    process = ServerProcess(
        database_url,
        log_path,
        **PRIVATE_ON,
        LICENSE_SVC_RUN_WEBHOOKS="on",
        LICENSE_SVC_WEBHOOK_POLL_SECONDS="0.05",
    )
    yield process
    process.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.stop()


def create(client: Client, role: str, **fields: Any) -> pb.CreateWebhookEndpointResponse:
    answer: pb.CreateWebhookEndpointResponse = client.webhooks.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(**fields), metadata=Client.as_(role), timeout=10
    )
    return answer


def until(found: Callable[[], T | None], timeout: float = 30.0) -> T:
    """The first truthy answer of `found` (the sender records an attempt just after the
    receiver has answered it), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        answer = found()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise TimeoutError("never came true")
        time.sleep(0.05)


def delete_all(client: Client, reseller: str) -> None:
    """The test database outlives a run: leave no endpoint behind for the next test."""
    listed = client.webhooks.ListWebhookEndpoints(
        pb.ListWebhookEndpointsRequest(reseller_id=reseller), metadata=Client.as_("ops")
    )
    for endpoint in listed.endpoints:
        client.webhooks.DeleteWebhookEndpoint(
            pb.DeleteWebhookEndpointRequest(endpoint_id=endpoint.endpoint_id),
            metadata=Client.as_("ops"),
        )


def test_a_reseller_manages_only_its_own_endpoints(hook_server: ServerProcess) -> None:
    client = hook_server.client
    mine = create(client, "acme", url="http://127.0.0.1:9/x")
    try:
        with pytest.raises(grpc.RpcError) as denied:
            create(client, "acme", reseller_id="globex", url="http://127.0.0.1:9/x")
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as portal:
            create(client, "portal", reseller_id="acme", url="http://127.0.0.1:9/x")
        assert portal.value.code() is grpc.StatusCode.PERMISSION_DENIED
        for call, request in [
            (client.webhooks.DeleteWebhookEndpoint, pb.DeleteWebhookEndpointRequest),
            (client.webhooks.ListWebhookDeliveries, pb.ListWebhookDeliveriesRequest),
        ]:
            with pytest.raises(grpc.RpcError) as hidden:
                call(request(endpoint_id=mine.endpoint_id), metadata=Client.as_("globex"))
            assert hidden.value.code() is grpc.StatusCode.NOT_FOUND
        theirs = client.webhooks.ListWebhookEndpoints(
            pb.ListWebhookEndpointsRequest(), metadata=Client.as_("globex")
        )
        assert mine.endpoint_id not in {e.endpoint_id for e in theirs.endpoints}
        assert mine.secret.startswith("whsec_")
    finally:
        delete_all(client, "acme")


def test_the_secret_is_shown_once_and_kept_only_sealed(
    hook_server: ServerProcess, sql: psycopg.Connection
) -> None:
    client = hook_server.client
    created = create(client, "acme", url="http://127.0.0.1:9/x")
    try:
        row = sql.execute(
            "SELECT * FROM webhook_endpoints WHERE endpoint_id = %s", (created.endpoint_id,)
        ).fetchone()
        dumped = repr(row).encode()
        assert created.secret.encode() not in dumped
        assert created.secret[6:].encode() not in dumped and created.secret[6:] not in repr(row)
        listed = client.webhooks.ListWebhookEndpoints(
            pb.ListWebhookEndpointsRequest(), metadata=Client.as_("acme")
        )
        assert created.secret not in str(listed)
        assert created.secret[6:] not in hook_server.log_text()
    finally:
        delete_all(client, "acme")


def test_a_partner_hears_of_its_keys_signed_and_can_page_and_redeliver(
    hook_server: ServerProcess, receiver: Receiver
) -> None:
    client = hook_server.client
    created = create(client, "acme", url=receiver.url)
    receiver.secret = created.secret
    try:
        issued = client.issue(2, reseller="acme")
        client.issue(1, reseller="globex")
        client.activate(issued.keys[0].code, "acct-hooks-1")
        receiver.wait_for(
            lambda r: {"batch.issued", "key.activated"} <= {m.type for m in r.received}
        )
        assert all(m.verified for m in receiver.received)
        assert {m.data.get("reseller_id") for m in receiver.received} == {"acme"}
        assert receiver.of_type("key.activated")[0].data["key_id"] == issued.keys[0].key_id

        def first_page() -> pb.ListWebhookDeliveriesResponse | None:
            page: pb.ListWebhookDeliveriesResponse = client.webhooks.ListWebhookDeliveries(
                pb.ListWebhookDeliveriesRequest(endpoint_id=created.endpoint_id, page_size=1),
                metadata=Client.as_("acme"),
            )
            delivered = page.deliveries[0].state == pb.WEBHOOK_DELIVERY_STATE_DELIVERED
            return page if delivered else None

        first = until(first_page)
        assert len(first.deliveries) == 1 and first.next_page_token
        rest = client.webhooks.ListWebhookDeliveries(
            pb.ListWebhookDeliveriesRequest(
                endpoint_id=created.endpoint_id, page_size=1, page_token=first.next_page_token
            ),
            metadata=Client.as_("acme"),
        )
        assert rest.deliveries[0].message_id != first.deliveries[0].message_id
        newest = first.deliveries[0]
        assert newest.state == pb.WEBHOOK_DELIVERY_STATE_DELIVERED
        assert newest.recent_attempts[0].status_code == 200

        client.webhooks.RedeliverWebhook(
            pb.RedeliverWebhookRequest(
                endpoint_id=created.endpoint_id, message_id=newest.message_id
            ),
            metadata=Client.as_("acme"),
        )
        receiver.wait_for(
            lambda r: [m.webhook_id for m in r.received].count(newest.message_id) == 2
        )
    finally:
        delete_all(client, "acme")


def test_metrics_show_deliveries_by_endpoint_and_outcome_and_the_oldest_pending_age(
    hook_server: ServerProcess, receiver: Receiver
) -> None:
    client = hook_server.client
    created = create(client, "acme", url=receiver.url, event_types=["key.activated"])
    receiver.secret = created.secret
    stuck = create(client, "acme", url="http://127.0.0.1:9/nobody", event_types=["key.activated"])
    try:
        client.activate(client.issue(1, reseller="acme").keys[0].code, "acct-metrics")
        receiver.wait_for(lambda r: len(r.received) == 1)
        url = f"http://127.0.0.1:{hook_server.metrics_port}/metrics"
        delivered = (
            f'license_svc_webhook_deliveries_total{{endpoint_id="{created.endpoint_id}",'
            'outcome="delivered",reseller_id="acme"} 1.0'
        )

        def scrape() -> str | None:
            text = str(urllib.request.urlopen(url, timeout=10).read().decode())
            return text if delivered in text else None

        text = until(scrape)
        assert (
            f'license_svc_webhook_oldest_pending_seconds{{endpoint_id="{stuck.endpoint_id}"' in text
        )
        pending = f'license_svc_webhook_pending{{endpoint_id="{stuck.endpoint_id}",'
        assert pending + 'reseller_id="acme"} 1.0' in text
    finally:
        delete_all(client, "acme")


def test_the_cli_adds_lists_and_removes_an_endpoint(hook_server: ServerProcess) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "license_svc.entrypoints.cli.main", "webhooks", *args,
             "--target", hook_server.address, "--token", TOKENS["acme"], "--json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    added = cli("add", "http://127.0.0.1:9/cli", "--type", "key.revoked")
    assert added.returncode == 0, added.stderr
    endpoint_id = json.loads(added.stdout)["endpoint_id"]
    listed = cli("list")
    assert endpoint_id in listed.stdout and "key.revoked" in listed.stdout
    assert cli("deliveries", endpoint_id).returncode == 0
    assert cli("rm", endpoint_id).returncode == 0
    assert endpoint_id not in cli("list").stdout
    refused = cli("redeliver", endpoint_id, "msg_nothing")
    assert refused.returncode == 1 and "FAILED_PRECONDITION" in refused.stderr
