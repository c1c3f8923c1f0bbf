"""BillingService: the billing service forwards the payment provider's subscription events."""

from __future__ import annotations

from datetime import datetime

import grpc

from license_svc.access.fields import BadRequest, Fields
from license_svc.domain.plan import MAX_SEATS, PlanKind, ProviderEvent
from license_svc.domain.tiers import has_catalog
from license_svc.keys.app import UnsupportedProduct
from license_svc.plans.book import PlanBook

from . import convert
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc

KINDS = {
    pb.PLAN_EVENT_KIND_STARTED: PlanKind.STARTED,
    pb.PLAN_EVENT_KIND_RENEWED: PlanKind.RENEWED,
    pb.PLAN_EVENT_KIND_CHANGED: PlanKind.CHANGED,
    pb.PLAN_EVENT_KIND_CANCELLED: PlanKind.CANCELLED,
}


class BillingServicer(pb_grpc.BillingServiceServicer):
    def __init__(self, plans: PlanBook) -> None:
        self._plans = plans

    def RecordPlanEvent(
        self, request: pb.RecordPlanEventRequest, context: grpc.ServicerContext
    ) -> pb.RecordPlanEventResponse:
        recorded = self._plans.record(provider_event(request))
        plan = recorded.plan
        return pb.RecordPlanEventResponse(
            plan_id=str(plan.id),
            position=recorded.position,
            duplicate=recorded.duplicate,
            ignored=recorded.ignored,
            entitlement=convert.plan_entitlement(plan),
        )


def provider_event(request: pb.RecordPlanEventRequest) -> ProviderEvent:
    """The request as a domain value, or every field violation at once."""
    violations: list[tuple[str, str]] = []
    billing_event_id, subscription_id, account_id = (
        convert.text_field(getattr(request, name), name, violations)
        for name in ("billing_event_id", "subscription_id", "account_id")
    )
    product = tier = None
    try:
        product = convert.product(request.product)
    except BadRequest as error:
        violations += error.violations
    try:
        tier = convert.tier(request.tier)
    except BadRequest as error:
        violations += error.violations
    if not 1 <= request.seats <= MAX_SEATS:
        violations.append(("seats", f"must be between 1 and {MAX_SEATS:,}"))
    kind = KINDS.get(request.kind)
    if kind is None:
        violations.append(("kind", "must be STARTED, RENEWED, CHANGED or CANCELLED"))
    starts, ends, occurred = (
        _required_time(request, name, violations)
        for name in ("period_starts_at", "period_ends_at", "occurred_at")
    )
    if starts and ends and ends <= starts:
        violations.append(("period_ends_at", "must be after period_starts_at"))
    convert.require(violations)
    assert product and tier and kind and starts and ends and occurred
    if not has_catalog(product):
        raise UnsupportedProduct(product)
    return ProviderEvent(
        billing_event_id=billing_event_id,
        subscription_id=subscription_id,
        account_id=account_id,
        product=product,
        tier=tier,
        seats=request.seats,
        kind=kind,
        period_starts_at=starts,
        period_ends_at=ends,
        occurred_at=occurred,
        cancel_at_period_end=request.cancel_at_period_end,
    )


def _required_time(
    request: pb.RecordPlanEventRequest, name: str, violations: list[tuple[str, str]]
) -> datetime | None:
    check = Fields()
    check.violations = violations  # the caller's list (a timestamp out of range is one too)
    return check.timestamp(request, name, required=True)
