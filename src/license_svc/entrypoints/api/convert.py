"""Proto ↔ domain values. The only module that knows both the enums of the contract and ours."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from google.protobuf import struct_pb2, timestamp_pb2

from license_svc.access.fields import ID, LIMITS, TEXT, BadRequest, Fields
from license_svc.domain.key import ActivationKey, KeyStatus
from license_svc.domain.plan import Plan
from license_svc.domain.subscription import SOURCE_PLAN, Entitlement, Subscription
from license_svc.domain.tiers import Product, Tier, TierLimits

from .gen import licensing_pb2 as pb

PRODUCTS = {Product.INTEGRATIONS: pb.PRODUCT_INTEGRATIONS, Product.CLOUD_POS: pb.PRODUCT_CLOUD_POS}
TIERS = {Tier.STARTER: pb.TIER_STARTER, Tier.GROWTH: pb.TIER_GROWTH, Tier.SCALE: pb.TIER_SCALE}
STATUSES = {
    KeyStatus.ISSUED: pb.KEY_STATUS_ISSUED,
    KeyStatus.ACTIVATED: pb.KEY_STATUS_ACTIVATED,
    KeyStatus.REVOKED: pb.KEY_STATUS_REVOKED,
    KeyStatus.EXPIRED: pb.KEY_STATUS_EXPIRED,
}
_PRODUCTS_BACK = {v: k for k, v in PRODUCTS.items()}
_TIERS_BACK = {v: k for k, v in TIERS.items()}
_STATUSES_BACK = {v: k for k, v in STATUSES.items()}


def product(value: int, field: str = "product") -> Product:
    return _enum(_PRODUCTS_BACK, value, field, "PRODUCT_INTEGRATIONS or PRODUCT_CLOUD_POS")


def tier(value: int, field: str = "tier") -> Tier:
    return _enum(_TIERS_BACK, value, field, "TIER_STARTER, TIER_GROWTH or TIER_SCALE")


def status(value: int, field: str = "status") -> KeyStatus | None:
    """UNSPECIFIED means 'any status' in filters."""
    if value == pb.KEY_STATUS_UNSPECIFIED:
        return None
    return _enum(_STATUSES_BACK, value, field, "a KEY_STATUS_* value")


def _enum(table: dict[Any, Any], value: int, field: str, expected: str) -> Any:
    try:
        return table[value]
    except KeyError:
        raise BadRequest([(field, f"must be {expected}")]) from None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tier_of(found: Subscription) -> pb.Tier:
    """The answer's tier: the highest active one, unspecified when nothing is active."""
    return TIERS[found.tier] if found.tier is not None else pb.TIER_UNSPECIFIED


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.astimezone(UTC)  # a naive time is local time, as `FromDatetime` takes it
    # On every allowance answer: plain arithmetic, not the library's pure-Python FromDatetime.
    delta = value - EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1_000
    )


def from_timestamp(value: timestamp_pb2.Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def key_id(text: str, field: str = "key_id") -> UUID:
    check = Fields()
    found = check.key_id(text, field)
    check.done()
    assert found is not None
    return found


def limits(value: TierLimits) -> pb.TierLimits:
    return pb.TierLimits(
        tier=TIERS[value.tier],
        name=value.name,
        invoices_per_month=value.invoices_per_month,
        sync=value.sync,
    )


def key(value: ActivationKey) -> pb.Key:
    return pb.Key(
        key_id=str(value.id),
        hint=value.hint,
        product=PRODUCTS[value.product],
        tier=TIERS[value.tier],
        seats=value.seats,
        period_months=value.period_months,
        reseller_id=value.reseller_id,
        batch_id=value.batch_id,
        status=STATUSES[value.status],
        account_id=value.account_id or "",
        issued_at=timestamp(value.created_on),
        activated_at=timestamp(value.activated_at),
        period_starts_at=timestamp(value.period_starts_at),
        period_ends_at=timestamp(value.period_ends_at),
        revoked_at=timestamp(value.revoked_at),
        revoked_reason=value.revoked_reason or "",
        revoked_by=value.revoked_by or "",
        expired_at=timestamp(value.expired_at),
        version=value.version,
    )


def entitlement(value: ActivationKey | Entitlement) -> pb.Entitlement:
    """From an activated key (ActivateKey) or a view's row (the subscription summary)."""
    key_id = value.id if isinstance(value, ActivationKey) else value.key_id
    return pb.Entitlement(
        key_id=str(key_id),
        hint=value.hint,
        tier=TIERS[value.tier],
        seats=value.seats,
        period_starts_at=timestamp(value.period_starts_at),
        period_ends_at=timestamp(value.period_ends_at),
        account_id=value.account_id or "",
        product=PRODUCTS[value.product],
        source=SOURCES[value.source if isinstance(value, Entitlement) else "key"],
        subscription_id=value.subscription_id if isinstance(value, Entitlement) else "",
    )


SOURCES = {"key": pb.ENTITLEMENT_SOURCE_KEY, SOURCE_PLAN: pb.ENTITLEMENT_SOURCE_PLAN}


def plan_entitlement(value: Plan) -> pb.Entitlement:
    """A plan bought online as the entitlement it grants (its current period)."""
    return pb.Entitlement(
        key_id=str(value.id),
        tier=TIERS[value.tier],
        seats=value.seats,
        period_starts_at=timestamp(value.period_starts_at),
        period_ends_at=timestamp(value.ends_at),
        account_id=value.account_id,
        product=PRODUCTS[value.product],
        source=pb.ENTITLEMENT_SOURCE_PLAN,
        subscription_id=value.subscription_id,
    )


def payload(values: dict[str, Any]) -> struct_pb2.Struct:
    """Event attributes as a Struct: datetimes as RFC 3339 text, ids as text."""
    struct = struct_pb2.Struct()
    struct.update({k: _plain(v) for k, v in values.items()})
    return struct


def payload_json(values: dict[str, Any]) -> str:
    """The same attributes as JSON text (StoredEvent.payload_json): integers stay integers."""
    return json.dumps({k: _plain(v) for k, v in values.items()}, ensure_ascii=False, default=str)


_PLAIN: dict[type, Callable[[Any], Any]] = {
    datetime: lambda v: v.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    UUID: str,
}


def _plain(value: Any) -> Any:
    for cls, convert in _PLAIN.items():
        if isinstance(value, cls):
            return convert(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def require(violations: list[tuple[str, str]]) -> None:
    if violations:
        raise BadRequest(violations)


def text_field(value: str, field: str, violations: list[tuple[str, str]], max_len: int = 0) -> str:
    """A required text field, checked by its kind and limit in `validation.LIMITS` (ids by
    their alphabet, free text for control characters); `max_len` is that table's business."""
    check = Fields()
    check.violations = violations  # the caller's list: its other violations are kept
    if LIMITS.get(field, (TEXT, 0))[0] == ID:
        return check.identifier(value, field)
    return check.text(value, field, required=True)
