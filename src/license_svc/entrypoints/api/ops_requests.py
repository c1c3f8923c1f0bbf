"""OpsService's requests and answers: a reseller's scope, date ranges, page tokens, and the
proto shapes of the read layer's answers (license_svc.reads/ops.py)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from license_svc.access.auth import PermissionDenied, Principal, Role
from license_svc.access.fields import BadRequest, Fields
from license_svc.domain.tiers import Product
from license_svc.reads.ops import EXPIRING_WINDOW, MAX_STATS_DAYS, ExpiringPage, default_days
from license_svc.reads.seat_usage import MAX_USAGE_DAYS, default_usage_days
from projections.catalog import CatalogKey
from projections.catalog_stats import DayRange, KeyStats

from . import convert
from .gen import licensing_pb2 as pb

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_TOKEN = 2_000  # ours are a few hundred characters; don't decode megabytes


def own_reseller(principal: Principal, requested: str) -> str:
    """The reseller_id a call reads: a reseller token reads its own (empty means its own) and
    never another's; ops read the one asked for, or every reseller when empty."""
    check = Fields()
    requested = check.identifier(requested, "reseller_id", required=False)
    check.done()
    if principal.role is Role.RESELLER:
        if requested and requested != principal.reseller_id:
            raise PermissionDenied("A reseller may read only its own reseller_id")
        return principal.reseller_id
    return requested


def stats_request(request: pb.GetKeyStatsRequest, now: datetime) -> tuple[Product | None, DayRange]:
    check = Fields()
    product = None
    if request.product != pb.PRODUCT_UNSPECIFIED:
        product = check.parse(convert.product, request.product)
    days = _day_range(check, request, now, default_days, MAX_STATS_DAYS)
    return product, days


def usage_request(request: pb.GetSeatUsageRequest, now: datetime) -> tuple[str, DayRange]:
    """GetSeatUsage's account (or '') and its range of days, or every field violation."""
    check = Fields()
    account_id = check.identifier(request.account_id, "account_id", required=False)
    days = _day_range(check, request, now, default_usage_days, MAX_USAGE_DAYS)
    return account_id, days


def _day_range(
    check: Fields,
    request: pb.GetKeyStatsRequest | pb.GetSeatUsageRequest,
    now: datetime,
    default: Callable[[date, date | None, date | None], DayRange],
    most: int,
) -> DayRange:
    """The request's from_date..to_date, missing ends filled in by `default`, at most `most`
    days (every field violation so far raised first)."""
    first = check.day(request.from_date, "from_date")
    last = check.day(request.to_date, "to_date")
    check.done()
    days = default(now.date(), first, last)
    if days.first > days.last:
        check.add("from_date", "must not be after to_date")
    elif len(days) > most:
        check.add("from_date", f"the range may span at most {most:,} days")
    check.done()
    return days


def stats_response(found: KeyStats) -> pb.GetKeyStatsResponse:
    return pb.GetKeyStatsResponse(
        counts=[
            pb.KeyCount(
                tier=convert.TIERS[c.tier],
                status=convert.STATUSES[c.status],
                reseller_id=c.reseller_id,
                count=c.count,
            )
            for c in found.counts
        ],
        activations_per_day=[
            pb.DailyActivations(date=day.isoformat(), count=n)
            for day, n in found.activations_per_day
        ],
        position=found.position,
    )


@dataclass(frozen=True)
class ExpiringAsk:
    before: datetime
    reseller_id: str
    after: tuple[datetime, UUID] | None
    size: int


def expiring_request(
    request: pb.ListExpiringSubscriptionsRequest, now: datetime, reseller_id: str
) -> ExpiringAsk:
    """AIP-158: a page token carries the query it continues (the window's end and the reseller);
    a later page that asks for another one is refused rather than silently mixed."""
    if request.page_size < 0:
        raise BadRequest([("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")])
    size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    check = Fields()
    before = check.timestamp(request, "before")
    check.done()
    if not request.page_token:
        return ExpiringAsk(before or now + EXPIRING_WINDOW, reseller_id, None, size)
    token_before, token_reseller, after = _read_token(request.page_token)
    if before is not None and before != token_before:
        raise BadRequest([("before", "must match the request the page token came from")])
    if token_reseller != reseller_id:
        raise BadRequest([("reseller_id", "must match the request the page token came from")])
    return ExpiringAsk(token_before, reseller_id, after, size)


def expiring_response(
    page: ExpiringPage, asked: ExpiringAsk
) -> pb.ListExpiringSubscriptionsResponse:
    token = ""
    if page.more and page.keys:
        last = page.keys[-1]
        assert last.period_ends_at is not None
        token = _token(asked.before, asked.reseller_id, last.period_ends_at, last.key_id)
    return pb.ListExpiringSubscriptionsResponse(
        entitlements=[_entitlement(key) for key in page.keys],
        next_page_token=token,
        position=page.position,
    )


def _entitlement(key: CatalogKey) -> pb.Entitlement:
    return pb.Entitlement(
        key_id=str(key.key_id),
        hint=key.hint,
        tier=convert.TIERS[key.tier],
        seats=key.seats,
        period_starts_at=convert.timestamp(key.period_starts_at),
        period_ends_at=convert.timestamp(key.period_ends_at),
        account_id=key.account_id or "",
        product=convert.PRODUCTS[key.product],
        reseller_id=key.reseller_id,
        source=pb.ENTITLEMENT_SOURCE_KEY,
    )


def _token(before: datetime, reseller_id: str, ends_at: datetime, key_id: UUID) -> str:
    body = {"v": 1, "b": before.isoformat(), "r": reseller_id, "e": ends_at.isoformat()}
    body["k"] = str(key_id)
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


def _read_token(token: str) -> tuple[datetime, str, tuple[datetime, UUID]]:
    try:
        if len(token) > MAX_TOKEN:
            raise ValueError(token)
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        if body["v"] == 1:
            ends_at = datetime.fromisoformat(body["e"])
            before = datetime.fromisoformat(body["b"])
            if ends_at.tzinfo and before.tzinfo:
                return before, str(body["r"]), (ends_at, UUID(body["k"]))
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError, AttributeError):
        pass
    raise BadRequest([("page_token", "is not a token this service returned")])
