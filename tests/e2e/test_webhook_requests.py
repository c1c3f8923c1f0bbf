"""WebhookService's refusals through the shared server (the private switch off): SSRF and
hostile requests at creation, malformed ids and pages, unknown endpoints; and the reseller's
scoped StreamEvents."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich
from tests.support import Client


def create(client: Client, role: str, **fields: Any) -> pb.CreateWebhookEndpointResponse:
    answer: pb.CreateWebhookEndpointResponse = client.webhooks.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(**fields), metadata=Client.as_(role), timeout=10
    )
    return answer


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://localhost:8443/hook",
        "http://93.184.215.14/hook",
    ],
)
def test_creation_refuses_private_addresses_and_plain_http_when_the_switch_is_off(
    client: Client, url: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        create(client, "acme", reseller_id="acme", url=url)
    error = rich(refused.value)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT and "url" in error.violations


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "https://93.184.215.14/\x00"}, "url"),
        ({"url": "https://93.184.215.14/" + "a" * 1_000_000}, "url"),
        ({"url": ""}, "url"),
        ({"url": "https://93.184.215.14/", "event_types": ["key.stolen"]}, "event_types[0]"),
        ({"url": "https://93.184.215.14/", "event_types": ["\x07"]}, "event_types[0]"),
        ({"url": "https://93.184.215.14/", "reseller_id": "a\x00b"}, "reseller_id"),
    ],
)
def test_malformed_requests_are_invalid_argument_with_the_field_named(
    client: Client, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        create(client, "ops", **{"reseller_id": "acme", **fields})
    error = rich(refused.value)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT and field in error.violations


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("DeleteWebhookEndpoint", pb.DeleteWebhookEndpointRequest(endpoint_id="x"), "endpoint_id"),
        ("DeleteWebhookEndpoint", pb.DeleteWebhookEndpointRequest(), "endpoint_id"),
        (
            "ListWebhookDeliveries",
            pb.ListWebhookDeliveriesRequest(endpoint_id="\x00" * 1_000_000),
            "endpoint_id",
        ),
        (
            "ListWebhookDeliveries",
            pb.ListWebhookDeliveriesRequest(
                endpoint_id="6f1c1c3e-0000-4000-8000-000000000000", page_size=-1
            ),
            "page_size",
        ),
        (
            "ListWebhookDeliveries",
            pb.ListWebhookDeliveriesRequest(
                endpoint_id="6f1c1c3e-0000-4000-8000-000000000000", page_token="garbage!"
            ),
            "page_token",
        ),
        (
            "RedeliverWebhook",
            pb.RedeliverWebhookRequest(
                endpoint_id="6f1c1c3e-0000-4000-8000-000000000000", message_id="m\x07"
            ),
            "message_id",
        ),
        ("ListWebhookEndpoints", pb.ListWebhookEndpointsRequest(reseller_id="a b"), "reseller_id"),
    ],
)
def test_malformed_ids_and_pages_are_invalid_argument_with_the_field_named(
    client: Client, method: str, request_: Any, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        getattr(client.webhooks, method)(request_, metadata=Client.as_("ops"), timeout=10)
    error = rich(refused.value)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT and field in error.violations


def test_an_unknown_endpoint_is_not_found(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        client.webhooks.ListWebhookDeliveries(
            pb.ListWebhookDeliveriesRequest(endpoint_id="6f1c1c3e-0000-4000-8000-000000000000"),
            metadata=Client.as_("ops"),
        )
    assert rich(missing.value).reason == "WEBHOOK_ENDPOINT_NOT_FOUND"


def test_a_reseller_streams_only_its_own_keys_events_with_its_own_filter(client: Client) -> None:
    theirs = client.issue(1, reseller="globex")
    mine = client.issue(2, reseller="acme")
    client.activate(mine.keys[0].code, "acct-feed-1")
    seen = []
    stream = client.audit.StreamEvents(
        pb.StreamEventsRequest(after_position=theirs.position - 1, reseller_id="acme"),
        metadata=Client.as_("acme"),
        timeout=30,
    )
    for item in stream:
        if item.WhichOneof("item") == "event":
            seen.append(item.event)
        if item.WhichOneof("item") == "caught_up":
            break
    ours = {k.key_id for k in mine.keys}
    assert {e.key_id for e in seen} == ours
    assert [e.type for e in seen if e.key_id == mine.keys[0].key_id] == [
        "KeyIssued",
        "KeyActivated",
    ]
    for reseller in ("", "globex"):
        denied = client.audit.StreamEvents(
            pb.StreamEventsRequest(reseller_id=reseller), metadata=Client.as_("acme"), timeout=10
        )
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(denied))
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
