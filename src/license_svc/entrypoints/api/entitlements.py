"""EntitlementService: the subscription summary and the seat allowance, read from the views.

Both answers are computed at the service's clock from the view's rows
(`license_svc.domain.subscription` holds the rules), so a period that has ended is never counted,
whatever the sweeper has done. With `min_position` the read waits, within the call's deadline, for
the view to reach it. Both come from the process's account cache when it is known current
(`license_svc.reads.accounts`). With `as_of` the answer is what the live read gave at that instant,
computed by replaying the account's events (`license_svc.reads.pointintime`); it carries the store
position it was computed at."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import grpc

from license_svc.access.auth import caller
from license_svc.access.fields import BadRequest, Fields
from license_svc.adapters.clock import Clock
from license_svc.domain.subscription import Subscription
from license_svc.domain.tiers import Product
from license_svc.reads.accounts import AccountReads, Answer
from license_svc.reads.live import LiveViews
from license_svc.reads.pointintime import PointInTime
from license_svc.reads.watch import AllowanceWatch
from license_svc.tokens.mint import AllowanceTokens

from . import convert
from .allowance_tokens import signer, signing_keys, token_message, watch_with_tokens
from .errors import NotServedHere
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc
from .reads import min_position, wait_budget
from .streaming import Streams
from .watch import _account_request, seat_allowance, watch_seat_allowance


class EntitlementServicer(pb_grpc.EntitlementServiceServicer):
    def __init__(
        self,
        views: LiveViews,
        clock: Clock,
        max_wait_seconds: float,
        streams: Streams,
        point_in_time: PointInTime | None = None,
        tokens: AllowanceTokens | None = None,
        misses: int = 8,
        settle_seconds: float = 0.0,
    ) -> None:
        self._reads = AccountReads(views)  # from the account cache when it is known current
        self._clock = clock
        self._max_wait = max_wait_seconds
        self._streams = streams
        self._watch = AllowanceWatch(views, clock)  # the channels of this process's watchers
        self._point_in_time = point_in_time
        self._tokens = tokens  # allowance tokens: None on a server built without a signing key
        self._settle = timedelta(seconds=settle_seconds)
        # GetSeatAllowance's cache misses and `min_position` waits: on threads of their own, as
        # many as the pool has connections (the loop's default executor had more threads than
        # connections, so the extra ones only queued for a checkout and timed out there).
        self._misses = ThreadPoolExecutor(max(1, misses), thread_name_prefix="allowance-read")

    def _as_of(
        self, request: Any, account_id: str, product: Product
    ) -> tuple[datetime, Subscription, int] | None:
        """The point-in-time answer when the request has `as_of` (never in the future)."""
        check = Fields()
        as_of = check.timestamp(request, "as_of")
        now = self._clock()
        if as_of is not None and as_of > now:
            check.add("as_of", "must not be in the future")
        elif as_of is not None and as_of > now - self._settle:
            # An event stamped before T may still commit after it: an answer at T could change.
            check.add(
                "as_of",
                f"must be at least {self._settle.total_seconds():g}s in the past"
                " (events stamped before a more recent instant may still be committing)",
            )
        check.done()
        if as_of is None:
            return None
        if self._point_in_time is None:
            raise NotServedHere("Point-in-time reads are not wired on this server")
        answer = self._point_in_time.subscription(account_id, product, as_of)
        return as_of, answer.subscription, answer.position

    def _then_or_now(
        self,
        request: Any,
        context: grpc.ServicerContext,
        account_id: str,
        product: Product,
        read: Callable[[str, Product, datetime, int, float], Answer],
    ) -> tuple[datetime | None, Subscription, int]:
        """The point-in-time answer when the request has `as_of`, else `read` at the service's
        clock (waiting for `min_position` within the call's deadline)."""
        then = self._as_of(request, account_id, product)
        if then is not None:
            return then
        found, position = read(
            account_id,
            product,
            self._clock(),
            min_position(request.min_position),
            wait_budget(context, self._max_wait),
        )
        return None, found, position

    def GetSubscriptionSummary(
        self, request: pb.GetSubscriptionSummaryRequest, context: grpc.ServicerContext
    ) -> pb.SubscriptionSummary:
        account_id, product = _account(request.account_id, request.product)
        as_of, found, position = self._then_or_now(
            request, context, account_id, product, self._reads.summary
        )
        limits = found.limits
        return pb.SubscriptionSummary(
            account_id=account_id,
            product=convert.PRODUCTS[product],
            active=found.active,
            tier=convert.tier_of(found),
            seats=found.seats,
            invoices_per_month=limits.invoices_per_month if limits else 0,
            sync=limits.sync if limits else "",
            entitlements=[convert.entitlement(e) for e in found.entitlements],
            position=position,
            as_of=convert.timestamp(as_of),
        )

    async def GetSeatAllowance(  # type: ignore[override]
        self, request: pb.GetSeatAllowanceRequest, context: Any
    ) -> pb.SeatAllowance:
        """A cached answer is given right here on the event loop: no thread hop, no database
        (the hop to a pool thread and back cost more than the read itself). Anything else is
        read on a thread, as a sync handler would be."""
        if not request.HasField("as_of"):
            account_id, product = _account(request.account_id, request.product)
            if request.connections_in_use >= 0:
                position = min_position(request.min_position)
                hit = self._reads.cached_allowance(account_id, product, self._clock(), position)
                if hit is not None:
                    found, at = hit
                    return seat_allowance(
                        account_id, product, found, at, request.connections_in_use
                    )
        loop = asyncio.get_running_loop()
        call = contextvars.copy_context()  # the caller's principal goes with the read
        answer: pb.SeatAllowance = await loop.run_in_executor(
            self._misses, call.run, self._seat_allowance, request, context
        )
        return answer

    def _seat_allowance(
        self, request: pb.GetSeatAllowanceRequest, context: grpc.ServicerContext
    ) -> pb.SeatAllowance:
        account_id, product = _account(request.account_id, request.product)
        in_use = request.connections_in_use
        if in_use < 0:
            raise BadRequest([("connections_in_use", "must not be negative")])
        as_of, found, position = self._then_or_now(
            request, context, account_id, product, self._reads.allowance
        )
        answer = seat_allowance(account_id, product, found, position, in_use)
        if (stamp := convert.timestamp(as_of)) is not None:
            answer.as_of.CopyFrom(stamp)
        return answer

    async def WatchSeatAllowance(  # type: ignore[override]
        self, request: pb.WatchSeatAllowanceRequest, context: Any
    ) -> None:
        if not request.with_token:
            await watch_seat_allowance(self._watch, self._streams, request, context)
            return
        if not request.account_id:  # a feed replays past answers: no token may claim them now
            raise BadRequest([("with_token", "is for one account's watch only")])
        account_id, product, in_use = _account_request(request)
        tokens = signer(self._tokens)
        with self._streams.slot(caller()):
            send = self._streams.sender(context)
            await watch_with_tokens(
                self._watch, send, tokens, self._clock, account_id, product, in_use
            )

    async def GetAllowanceToken(  # type: ignore[override]
        self, request: pb.GetAllowanceTokenRequest, context: Any
    ) -> pb.GetAllowanceTokenResponse:
        """The allowance GetSeatAllowance would answer (from the cache on the loop when it is
        known current, else read on a thread), signed at the same instant."""
        tokens = signer(self._tokens)
        account_id, product = _account(request.account_id, request.product)
        position, now = min_position(request.min_position), self._clock()
        hit = self._reads.cached_allowance(account_id, product, now, position)
        if hit is None:
            budget = wait_budget(context, self._max_wait)
            hit = await asyncio.to_thread(
                self._reads.allowance, account_id, product, now, position, budget
            )
        found, at = hit
        minted = token_message(tokens.mint(account_id, product, found, at, now))
        return pb.GetAllowanceTokenResponse(token=minted.token, expires_at=minted.expires_at)

    async def GetSigningKeys(  # type: ignore[override]
        self, request: pb.GetSigningKeysRequest, context: Any
    ) -> pb.GetSigningKeysResponse:
        return signing_keys(self._tokens)


def _account(account_id: str, product: int) -> tuple[str, Product]:
    check = Fields()
    account = check.identifier(account_id, "account_id")
    chosen = check.parse(convert.product, product)
    check.done()
    assert chosen is not None
    return account, chosen
