"""SeatService (rules §12): seat leases, translated between proto and `license_svc.seats`.

Who may call is the auth table's; the errors (NO_ACTIVE_SUBSCRIPTION, NO_SEAT_AVAILABLE with
RetryInfo) are the error table's. The portal lists only; integrations and ops do everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc

from license_svc.access.fields import BadRequest, Fields
from license_svc.domain.seats import MAX_RENEWALS, ttl_of
from license_svc.domain.tiers import Product
from license_svc.seats.book import Lease, SeatBook

from . import convert
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc


class SeatServicer(pb_grpc.SeatServiceServicer):
    def __init__(self, book: SeatBook, changed: Callable[[str, int], None] | None = None) -> None:
        """`changed(account_id, position)`: this server granted or released a lease (the
        account cache forgets the account: its next answer counts the lease)."""
        self._book = book
        self._changed = changed or (lambda _account, _position: None)

    # AcquireSeat, RenewSeats and ReleaseSeat are coroutines: an acquire or a release waits for
    # its group's commit on the event loop, not on one of the server's few threads
    # (`SeatBook.acquire_async`); a heartbeat's one statement runs on the loop itself.

    async def AcquireSeat(  # type: ignore[override]
        self, request: pb.AcquireSeatRequest, context: Any
    ) -> pb.AcquireSeatResponse:
        check = Fields()
        account_id, product = _account_product(check, request)
        connection_id = check.identifier(request.connection_id, "connection_id")
        holder = check.identifier(request.holder, "holder")
        ttl = 0
        try:
            ttl = ttl_of(request.ttl_seconds)
        except ValueError as error:
            check.add("ttl_seconds", str(error).removeprefix("ttl_seconds "))
        check.done()
        assert product is not None
        grant = await self._book.acquire_async(account_id, product, connection_id, holder, ttl)
        if grant.granted:
            self._changed(account_id, grant.position)
        return pb.AcquireSeatResponse(
            lease=lease(grant.lease),
            seats=grant.seats,
            seats_leased=grant.seats_leased,
            position=grant.position,
        )

    async def RenewSeats(  # type: ignore[override]
        self, request: pb.RenewSeatsRequest, context: Any
    ) -> pb.RenewSeatsResponse:
        check = Fields()
        holder = check.identifier(request.holder, "holder")
        if not request.lease_ids:
            check.add("lease_ids", "is required")
        elif len(request.lease_ids) > MAX_RENEWALS:
            check.add("lease_ids", f"must name at most {MAX_RENEWALS:,} leases")
            check.done()
        ids: list[str] = list(request.lease_ids)
        if not _all_canonical(ids):  # else each is parsed, and said wrong
            parsed = [check.uuid(v, f"lease_ids[{i}]", "lease id") for i, v in enumerate(ids)]
            ids = [str(i) for i in parsed if i is not None]
        check.done()
        renewals = await self._book.renew_async(holder, ids)
        # The leases renewed together share their new expires_at (one clock reading, one TTL
        # most often): each distinct answer but the id is made once, and each lease's entry is
        # a copy of it with its id (a quarter of building each entry from its fields).
        answer = pb.RenewSeatsResponse()
        add = answer.leases.add
        shapes: dict[tuple[bool, bool, datetime | None], pb.LeaseRenewal] = {}
        for r in renewals:
            shape = (r.renewed, r.over_allowance, r.expires_at)
            template = shapes.get(shape)
            if template is None:
                template = shapes[shape] = pb.LeaseRenewal(
                    renewed=r.renewed,
                    lost=r.lost,
                    over_allowance=r.over_allowance,
                    expires_at=convert.timestamp(r.expires_at),
                )
            entry = add()
            entry.CopyFrom(template)
            entry.lease_id = str(r.lease_id)
        return answer

    async def ReleaseSeat(  # type: ignore[override]
        self, request: pb.ReleaseSeatRequest, context: Any
    ) -> pb.ReleaseSeatResponse:
        check = Fields()
        lease_id = check.uuid(request.lease_id, "lease_id", "lease id")
        check.done()
        assert lease_id is not None
        released = await self._book.release_async(lease_id)
        if released.released:
            self._changed(released.account_id, released.position)
        return pb.ReleaseSeatResponse(released=released.released, position=released.position)

    def ListSeatLeases(
        self, request: pb.ListSeatLeasesRequest, context: grpc.ServicerContext
    ) -> pb.ListSeatLeasesResponse:
        check = Fields()
        account_id, product = _account_product(check, request)
        check.done()
        assert product is not None
        return pb.ListSeatLeasesResponse(
            leases=[lease(x) for x in self._book.live(account_id, product)]
        )


# A lease id as the server writes it: a heartbeat's ids are passed on without parsing.
_CANONICAL = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_CANONICAL_LIST = re.compile(f"{_CANONICAL}(?:,{_CANONICAL})*")


def _all_canonical(ids: list[str]) -> bool:
    """Whether every id is a canonical lease id, in one match over them all: n ids joined by
    n - 1 commas are n canonical ids exactly when the join matches a comma-separated list of
    them and is 37 n - 1 characters long (then the list has n ids, its n - 1 commas are the
    joins' own, and no id holds a comma)."""
    joined = ",".join(ids)
    return len(joined) == 37 * len(ids) - 1 and _CANONICAL_LIST.fullmatch(joined) is not None


def lease(value: Lease) -> pb.SeatLease:
    return pb.SeatLease(
        lease_id=str(value.lease_id),
        account_id=value.account_id,
        product=convert.PRODUCTS[value.product],
        connection_id=value.connection_id,
        holder=value.holder,
        granted_at=convert.timestamp(value.granted_at),
        expires_at=convert.timestamp(value.expires_at),
    )


def _account_product(
    check: Fields, request: pb.AcquireSeatRequest | pb.ListSeatLeasesRequest
) -> tuple[str, Product | None]:
    return check.identifier(request.account_id, "account_id"), _product(check, request.product)


def _product(check: Fields, value: int) -> Product | None:
    try:
        return convert.product(value)
    except BadRequest as error:
        check.merge(error)
        return None
