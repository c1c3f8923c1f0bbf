"""WebhookService (rules §14): a reseller's endpoints and their delivery log.

A reseller manages only its own endpoints (an endpoint of another reseller is answered as one
that does not exist); ops any. The URL is checked before anything is written: https to a
public address unless LICENSE_SVC_WEBHOOK_ALLOW_PRIVATE (`license_svc.webhooks.addresses`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import grpc

from license_svc.access.auth import Principal, Role, caller
from license_svc.access.fields import BadRequest, Fields, forbidden_character
from license_svc.webhooks.addresses import MAX_URL, UrlRefused
from license_svc.webhooks.endpoints import Endpoint, Endpoints
from license_svc.webhooks.messages import TYPES

from . import convert
from .errors import NotServedHere
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc
from .ops_requests import own_reseller

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_TOKEN = 500
MAX_TYPES = len(TYPES)
STATES = {
    "pending": pb.WEBHOOK_DELIVERY_STATE_PENDING,
    "delivered": pb.WEBHOOK_DELIVERY_STATE_DELIVERED,
    "failed": pb.WEBHOOK_DELIVERY_STATE_FAILED,
    "cancelled": pb.WEBHOOK_DELIVERY_STATE_CANCELLED,
}


class WebhookServicer(pb_grpc.WebhookServiceServicer):
    def __init__(self, endpoints: Endpoints | None) -> None:
        self._endpoints = endpoints

    def _book(self) -> Endpoints:
        if self._endpoints is None:
            raise NotServedHere("This server was built without webhooks")
        return self._endpoints

    def CreateWebhookEndpoint(
        self, request: pb.CreateWebhookEndpointRequest, context: grpc.ServicerContext
    ) -> pb.CreateWebhookEndpointResponse:
        check = Fields()
        url = _url(check, request.url)
        types = _types(check, list(request.event_types))
        check.done()
        reseller_id = own_reseller(caller(), request.reseller_id)
        if not reseller_id:
            raise BadRequest([("reseller_id", "is required")])
        try:
            created = self._book().create(reseller_id, url, types)
        except UrlRefused as refused:
            raise BadRequest([("url", str(refused))]) from None
        return pb.CreateWebhookEndpointResponse(
            endpoint_id=created.endpoint.endpoint_id,
            secret=created.secret,
            endpoint=_endpoint(created.endpoint),
        )

    def ListWebhookEndpoints(
        self, request: pb.ListWebhookEndpointsRequest, context: grpc.ServicerContext
    ) -> pb.ListWebhookEndpointsResponse:
        reseller_id = own_reseller(caller(), request.reseller_id)
        found = self._book().list(reseller_id)
        return pb.ListWebhookEndpointsResponse(endpoints=[_endpoint(e) for e in found])

    def DeleteWebhookEndpoint(
        self, request: pb.DeleteWebhookEndpointRequest, context: grpc.ServicerContext
    ) -> pb.DeleteWebhookEndpointResponse:
        endpoint_id = _endpoint_id(request.endpoint_id)
        deleted, cancelled = self._book().delete(endpoint_id, _confined(caller()))
        return pb.DeleteWebhookEndpointResponse(deleted=deleted, cancelled_deliveries=cancelled)

    def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: grpc.ServicerContext
    ) -> pb.ListWebhookDeliveriesResponse:
        """Newest first (AIP-158): a page token carries the endpoint it continues and the last
        delivery shown; a token of another endpoint is refused rather than mixed."""
        endpoint_id = _endpoint_id(request.endpoint_id)
        if request.page_size < 0:
            raise BadRequest([("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")])
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = _read_token(request.page_token, endpoint_id) if request.page_token else None
        page = self._book().deliveries(endpoint_id, _confined(caller()), before, size)
        token = ""
        if page.more and page.deliveries:
            token = _token(endpoint_id, int(page.deliveries[-1]["seq"]))
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[
                _delivery(row, page.attempts.get(row["message_id"], [])) for row in page.deliveries
            ],
            next_page_token=token,
        )

    def RedeliverWebhook(
        self, request: pb.RedeliverWebhookRequest, context: grpc.ServicerContext
    ) -> pb.RedeliverWebhookResponse:
        endpoint_id = _endpoint_id(request.endpoint_id)
        check = Fields()
        message_id = check.identifier(request.message_id, "message_id")
        check.done()
        row = self._book().redeliver(endpoint_id, message_id, _confined(caller()))
        return pb.RedeliverWebhookResponse(delivery=_delivery(row, []))


def _confined(principal: Principal) -> str | None:
    """The reseller a caller is confined to; None for ops."""
    return principal.reseller_id if principal.role is Role.RESELLER else None


def _url(check: Fields, value: str) -> str:
    if len(value) > 4 * MAX_URL:  # don't scan megabytes to say it is too long
        check.add("url", f"must be at most {MAX_URL} characters")
        return ""
    problem = forbidden_character(value)
    value = value.strip(" ")
    if problem is not None:
        check.add("url", problem)
    elif not value:
        check.add("url", "is required")
    return value


def _types(check: Fields, values: list[str]) -> list[str]:
    if len(values) > 4 * MAX_TYPES:
        check.add("event_types", f"must name at most {MAX_TYPES} types")
        return []
    found = []
    for i, value in enumerate(values):
        before = len(check.violations)
        value = check.identifier(value, f"event_types[{i}]")
        if len(check.violations) > before:
            continue
        if value not in TYPES:
            check.add(f"event_types[{i}]", f"unknown message type (one of {', '.join(TYPES)})")
        found.append(value)
    return found


def _endpoint_id(value: str) -> str:
    check = Fields()
    found = check.key_id(value, "endpoint_id")
    check.done()
    return str(found)


def _endpoint(e: Endpoint) -> pb.WebhookEndpoint:
    return pb.WebhookEndpoint(
        endpoint_id=e.endpoint_id,
        reseller_id=e.reseller_id,
        url=e.url,
        event_types=e.event_types,
        created_at=convert.timestamp(e.created_at),
        disabled=e.disabled_at is not None,
        disabled_reason=e.disabled_reason or "",
        pending_deliveries=e.pending,
        oldest_pending_at=convert.timestamp(e.oldest_pending_at),
    )


def _delivery(row: dict[str, Any], attempts: list[dict[str, Any]]) -> pb.WebhookDelivery:
    return pb.WebhookDelivery(
        message_id=row["message_id"],
        endpoint_id=str(row["endpoint_id"]),
        event_type=row["event_type"],
        position=row["position"],
        state=STATES.get(row["state"], pb.WEBHOOK_DELIVERY_STATE_UNSPECIFIED),
        attempts=row["attempts"],
        created_at=convert.timestamp(row["created_at"]),
        next_attempt_at=convert.timestamp(
            row["next_attempt_at"] if row["state"] == "pending" else None
        ),
        delivered_at=convert.timestamp(row["delivered_at"]),
        last_status_code=row["last_status"] or 0,
        last_error=row["last_error"] or "",
        recent_attempts=[
            pb.WebhookAttempt(
                attempt=a["attempt"],
                started_at=convert.timestamp(a["started_at"]),
                status_code=a["status"] or 0,
                latency_ms=a["latency_ms"],
                error=a["error"] or "",
            )
            for a in attempts
        ],
    )


def _token(endpoint_id: str, seq: int) -> str:
    body = json.dumps({"v": 1, "e": endpoint_id, "s": seq}).encode()
    return base64.urlsafe_b64encode(body).decode()


def _read_token(token: str, endpoint_id: str) -> int:
    try:
        if len(token) > MAX_TOKEN:
            raise ValueError(token)
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        if body["v"] == 1 and isinstance(body["s"], int) and body["s"] > 0:
            if body["e"] != endpoint_id:
                raise BadRequest(
                    [("endpoint_id", "must match the request the page token came from")]
                )
            return int(body["s"])
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError, AttributeError):
        pass
    raise BadRequest([("page_token", "is not a token this service returned")])
