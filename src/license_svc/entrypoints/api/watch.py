"""WatchSeatAllowance, served on the event loop (`streaming.py`): one account's allowance as it
changes, or — without an account, for the integrations and ops roles — the change feed of every
account's allowance after `after_position` (`license_svc.reads.changefeed`).

An account watch sends the allowance at once, then one message per visible change: an
activation, a revocation, an expiry, and the instant a period ends by the read-time rule (the
channel wakes at `valid_until` by the service's clock; no sweeper is needed). Each message
carries the view position it was read at.
"""

from __future__ import annotations

from typing import Any

from license_svc.access.auth import PermissionDenied, Role, caller
from license_svc.access.fields import Fields
from license_svc.domain.subscription import Subscription
from license_svc.domain.tiers import Product
from license_svc.reads.changefeed import CaughtUp, Changed, Checkpoint, allowance_changes
from license_svc.reads.watch import AllowanceWatch

from . import convert
from .gen import licensing_pb2 as pb
from .streaming import Send, Streams

FEED_ROLES = frozenset({Role.INTEGRATIONS, Role.OPS})


def seat_allowance(
    account_id: str, product: Product, found: Subscription, position: int, in_use: int
) -> pb.SeatAllowance:
    return pb.SeatAllowance(
        account_id=account_id,
        product=convert.PRODUCTS[product],
        seats=found.seats,
        tier=convert.tier_of(found),
        active=found.active,
        valid_until=convert.timestamp(found.valid_until),
        connections_in_use=in_use,
        can_create_connection=found.allows(in_use),
        remaining=found.remaining(in_use),
        position=position,
        seats_leased=found.seats_leased,
    )


async def watch_seat_allowance(
    watch: AllowanceWatch, streams: Streams, request: pb.WatchSeatAllowanceRequest, context: Any
) -> None:
    if not request.account_id:
        if caller().role not in FEED_ROLES:
            raise PermissionDenied(
                "Only the integrations and ops roles may watch every account; name an account_id"
            )
        product = _feed_request(request)
        with streams.slot(caller()):
            await _feed(watch, streams.sender(context), request.after_position, product)
        return
    account_id, product, in_use = _account_request(request)
    with streams.slot(caller()):
        send = streams.sender(context)
        async for published in watch.follow(account_id, product):
            found, position = published.answer
            # Encoded once per change and connections count, however many watch the account
            # (the server passes bytes through; see the interceptor).
            encoded = published.memo.get(in_use)
            if encoded is None:
                allowance = seat_allowance(account_id, product, found, position, in_use)
                response = pb.WatchSeatAllowanceResponse(allowance=allowance)
                encoded = published.memo[in_use] = response.SerializeToString()
            await send(encoded, position)


async def _feed(watch: AllowanceWatch, send: Send, after: int, product: Product | None) -> None:
    async for item in allowance_changes(watch, after, product):
        if isinstance(item, Changed):
            change = item.change
            allowance = seat_allowance(
                change.account_id, Product(change.product), item.allowance, change.position, 0
            )
            await send(pb.WatchSeatAllowanceResponse(allowance=allowance), change.position)
        elif isinstance(item, CaughtUp):
            caught_up = pb.CaughtUp(position=item.position)
            await send(pb.WatchSeatAllowanceResponse(caught_up=caught_up), item.position)
        elif isinstance(item, Checkpoint):
            checkpoint = pb.Checkpoint(position=item.position)
            await send(pb.WatchSeatAllowanceResponse(checkpoint=checkpoint), item.position)


def _account_request(request: pb.WatchSeatAllowanceRequest) -> tuple[str, Product, int]:
    check = Fields()
    account = check.identifier(request.account_id, "account_id")
    chosen = check.parse(convert.product, request.product)
    if request.connections_in_use < 0:
        check.add("connections_in_use", "must not be negative")
    if request.after_position:
        check.add("after_position", "is for the change feed (no account_id) only")
    check.done()
    assert chosen is not None
    return account, chosen, request.connections_in_use


def _feed_request(request: pb.WatchSeatAllowanceRequest) -> Product | None:
    check = Fields()
    chosen = None
    if request.product != pb.PRODUCT_UNSPECIFIED:  # unspecified: every product
        chosen = check.parse(convert.product, request.product)
    if request.after_position < 0:
        check.add("after_position", "must not be negative")
    if request.connections_in_use:
        check.add("connections_in_use", "is for one account's watch only")
    check.done()
    return chosen
