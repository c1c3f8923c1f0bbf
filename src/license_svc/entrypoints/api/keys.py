"""KeyService: resellers issue, revoke and read their own keys; ops any key."""

from __future__ import annotations

import base64
import binascii
from uuid import UUID

import grpc

from license_svc.access.auth import PermissionDenied, Principal, Role, caller
from license_svc.access.fields import BadRequest, Fields
from license_svc.adapters.application import KeyNotFound
from license_svc.domain import codes
from license_svc.domain.key import PERIOD_MONTHS, SEATS, ActivationKey
from license_svc.keys.app import IssueKeys, LicensingApp
from license_svc.reads.live import LiveViews
from projections.catalog import CatalogKey, CatalogView, KeyFilter

from . import convert
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc
from .reads import min_position, wait_budget

MAX_COUNT = 10_000
MAX_SEATS = SEATS[-1]
MAX_MONTHS = PERIOD_MONTHS[-1]
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000
# An IssueKeys call stops waiting for a minting slot this long before its deadline: a batch of
# 10,000 keys takes a few hundred ms, and one finished after the deadline reaches nobody.
ISSUE_MARGIN_SECONDS = 1.0
NO_DEADLINE = 1e9  # grpcio reports ~9e18 s remaining when the client set no deadline


def key_id_from(app: LicensingApp, key_id: str, code: str) -> UUID:
    """A request names its key by id or by code; a code is turned into its id here."""
    if key_id:
        return convert.key_id(key_id)
    if code:
        return app.key_id_of(codes.parse(code))
    convert.require([("key_id", "key_id or code is required")])
    raise AssertionError("unreachable")


def visible_key(app: LicensingApp, principal: Principal, key_id: UUID) -> ActivationKey:
    """A reseller sees only its own keys; another reseller's key looks like no key at all."""
    key = app.get_key(key_id)
    if principal.role is Role.RESELLER and key.reseller_id != principal.reseller_id:
        raise KeyNotFound(str(key_id))
    return key


class KeyServicer(pb_grpc.KeyServiceServicer):
    def __init__(self, app: LicensingApp, views: LiveViews, max_wait_seconds: float) -> None:
        self._app = app
        self._views = views
        self._max_wait = max_wait_seconds

    def IssueKeys(
        self, request: pb.IssueKeysRequest, context: grpc.ServicerContext
    ) -> pb.IssueKeysResponse:
        principal = caller()
        check = Fields()
        is_reseller = principal.role is Role.RESELLER
        reseller_id = check.identifier(request.reseller_id, "reseller_id", required=not is_reseller)
        request_id = check.identifier(request.request_id, "request_id", required=False)
        if is_reseller and not check.violations:
            reseller_id = reseller_id or principal.reseller_id
            if reseller_id != principal.reseller_id:
                raise PermissionDenied("A reseller may issue keys only under its own reseller_id")
        product = tier = None
        product = check.parse(convert.product, request.product)
        tier = check.parse(convert.tier, request.tier)
        _in_range(request.seats, 1, MAX_SEATS, "seats", check.violations)
        _in_range(request.period_months, 1, MAX_MONTHS, "period_months", check.violations)
        _in_range(request.count, 1, MAX_COUNT, "count", check.violations)
        check.done()
        assert product is not None and tier is not None
        batch = self._app.issue_keys(
            IssueKeys(
                reseller_id=reseller_id,
                product=product,
                tier=tier,
                seats=request.seats,
                period_months=request.period_months,
                count=request.count,
                request_id=request_id,
            ),
            wait=_issue_wait(context, self._max_wait),
        )
        response = pb.IssueKeysResponse(
            batch_id=str(batch.batch_id), position=batch.position, replayed=batch.replayed
        )
        add = response.keys.add  # in place: no second list of 10,000 messages to copy from
        for k in batch.keys:
            add(key_id=str(k.key_id), code=k.code, hint=k.hint)
        return response

    def RevokeKey(
        self, request: pb.RevokeKeyRequest, context: grpc.ServicerContext
    ) -> pb.RevokeKeyResponse:
        principal = caller()
        check = Fields()
        reason = check.text(request.reason, "reason") or "unspecified"
        check.done()
        key_id = key_id_from(self._app, request.key_id, request.code)
        change = self._app.revoke(
            key_id,
            reason=reason,
            revoked_by=principal.name,
            by_ops=principal.is_ops,
            owner=principal.reseller_id if principal.role is Role.RESELLER else None,
        )
        return pb.RevokeKeyResponse(key=convert.key(change.key), position=change.position)

    def GetKey(self, request: pb.GetKeyRequest, context: grpc.ServicerContext) -> pb.GetKeyResponse:
        key_id = key_id_from(self._app, request.key_id, request.code)
        return pb.GetKeyResponse(key=convert.key(visible_key(self._app, caller(), key_id)))

    def ListKeys(
        self, request: pb.ListKeysRequest, context: grpc.ServicerContext
    ) -> pb.ListKeysResponse:
        """From the key catalog, in issue order; a reseller sees only its own keys."""
        principal = caller()
        check = Fields()
        reseller_id = check.identifier(request.reseller_id, "reseller_id", required=False)
        batch_id = check.identifier(request.batch_id, "batch_id", required=False)
        page_token = check.identifier(request.page_token, "page_token", required=False)
        if request.page_size < 0:
            check.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE:,}")
        check.done()
        if principal.role is Role.RESELLER:
            if reseller_id and reseller_id != principal.reseller_id:
                raise PermissionDenied("A reseller may list only its own keys")
            reseller_id = principal.reseller_id
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        where = KeyFilter(reseller_id, batch_id, convert.status(request.status))
        after = _read_page_token(page_token)
        now = self._app.clock()

        def page_of(view: CatalogView) -> tuple[list[CatalogKey], int]:
            page = view.list_keys(where, now, after, size + 1)  # one more: is there a next page?
            return page.keys, page.position

        keys, position = self._views.read(
            CatalogView,
            min_position(request.min_position),
            wait_budget(context, self._max_wait),
            page_of,
        )
        more = len(keys) > size
        keys = keys[:size]
        return pb.ListKeysResponse(
            keys=[_listed(k) for k in keys],
            next_page_token=_page_token(keys[-1].issued_position) if more else "",
            position=position,
        )


def _page_token(after_position: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{after_position}".encode()).decode()


def _read_page_token(token: str) -> int:
    if not token:
        return 0
    try:
        version, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if version == "v1" and int(value) >= 0:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadRequest([("page_token", "is not a token this service returned")])


def _listed(key: CatalogKey) -> pb.Key:
    return pb.Key(
        key_id=str(key.key_id),
        hint=key.hint,
        product=convert.PRODUCTS[key.product],
        tier=convert.TIERS[key.tier],
        seats=key.seats,
        period_months=key.period_months,
        reseller_id=key.reseller_id,
        batch_id=key.batch_id,
        status=convert.STATUSES[key.status],
        account_id=key.account_id or "",
        issued_at=convert.timestamp(key.issued_at),
        activated_at=convert.timestamp(key.activated_at),
        period_starts_at=convert.timestamp(key.period_starts_at),
        period_ends_at=convert.timestamp(key.period_ends_at),
        revoked_at=convert.timestamp(key.revoked_at),
        revoked_reason=key.revoked_reason or "",
        revoked_by=key.revoked_by or "",
        expired_at=convert.timestamp(key.expired_at),
        version=key.version,
    )


def _issue_wait(context: grpc.ServicerContext, cap: float) -> float:
    """How long IssueKeys may wait for a minting slot: until shortly before the call's deadline,
    or `cap` seconds when the client set none."""
    remaining = context.time_remaining()
    if remaining is None or remaining >= NO_DEADLINE:
        return cap
    return max(0.0, float(remaining) - ISSUE_MARGIN_SECONDS)


def _in_range(value: int, lo: int, hi: int, field: str, violations: list[tuple[str, str]]) -> None:
    if not lo <= value <= hi:
        violations.append((field, f"must be between {lo} and {hi:,}"))
