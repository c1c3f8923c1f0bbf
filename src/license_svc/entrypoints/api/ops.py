"""OpsService: counts, expiring subscriptions and projection status for dashboards."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from license_svc.access.auth import caller
from license_svc.access.fields import Fields
from license_svc.adapters.clock import Clock, utcnow
from license_svc.attempts.limiter import AttemptLimiter
from license_svc.attempts.upkeep import lift_block
from license_svc.reads import ops
from license_svc.reads.live import LiveViews
from license_svc.reads.seat_usage import seat_usage

from . import ops_requests
from .errors import NotServedHere
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc
from .ops_requests import own_reseller


class OpsServicer(pb_grpc.OpsServiceServicer):
    def __init__(
        self,
        views: LiveViews,
        head_position: Callable[[], int | None],
        *,
        clock: Clock = utcnow,
        limiter: AttemptLimiter | None = None,
    ) -> None:
        self._views = views
        self._head_position = head_position
        self._clock = clock
        self._limiter = limiter

    def GetKeyStats(
        self, request: pb.GetKeyStatsRequest, context: grpc.ServicerContext
    ) -> pb.GetKeyStatsResponse:
        """Key counts by tier × status × reseller and activations per UTC day, from the
        catalog's count tables; a reseller sees its own reseller_id only."""
        reseller_id = own_reseller(caller(), request.reseller_id)
        now = self._clock()
        product, days = ops_requests.stats_request(request, now)
        found = ops.stats(self._views, reseller_id=reseller_id, product=product, now=now, days=days)
        return ops_requests.stats_response(found)

    def ListExpiringSubscriptions(
        self, request: pb.ListExpiringSubscriptionsRequest, context: grpc.ServicerContext
    ) -> pb.ListExpiringSubscriptionsResponse:
        """Running subscriptions that end before `before`, by end then key id (AIP-158)."""
        reseller_id = own_reseller(caller(), request.reseller_id)
        now = self._clock()
        asked = ops_requests.expiring_request(request, now, reseller_id)
        page = ops.expiring(
            self._views,
            now=now,
            before=asked.before,
            reseller_id=reseller_id,
            after=asked.after,
            size=asked.size,
        )
        return ops_requests.expiring_response(page, asked)

    def GetProjectionStatus(
        self, request: pb.GetProjectionStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetProjectionStatusResponse:
        """Each view's live position, the store's head and the lag between them. Positions are
        read before the head, so a lag is never negative."""
        positions = self._views.status()
        head = self._head_position() or 0
        return pb.GetProjectionStatusResponse(
            projections=[
                pb.ProjectionStatus(
                    name=name, position=position, head_position=head, lag=max(0, head - position)
                )
                for name, position in positions
            ],
            head_position=head,
        )

    def GetSeatUsage(
        self, request: pb.GetSeatUsageRequest, context: grpc.ServicerContext
    ) -> pb.GetSeatUsageResponse:
        """Seats sold against the peak of seat leases, per account and UTC day; a reseller
        sees the accounts of its own keys only."""
        reseller_id = own_reseller(caller(), request.reseller_id)
        account_id, days = ops_requests.usage_request(request, self._clock())
        found = seat_usage(self._views, reseller_id=reseller_id, account_id=account_id, days=days)
        return pb.GetSeatUsageResponse(
            days=[
                pb.SeatUsageDay(
                    date=d.day.isoformat(),
                    account_id=d.account_id,
                    seats_sold=d.seats_sold,
                    peak_seats_leased=d.peak_seats_leased,
                )
                for d in found.days
            ],
            truncated=found.truncated,
            position=found.position,
        )

    def LiftAttemptBlock(
        self, request: pb.LiftAttemptBlockRequest, context: grpc.ServicerContext
    ) -> pb.LiftAttemptBlockResponse:
        """Support forgives a session's failed attempts (account_id + session_id) or an
        account's (account_id alone: every session of it); recorded with who and why."""
        fields = Fields()
        account_id = fields.identifier(request.account_id, "account_id")
        session_id = fields.identifier(request.session_id, "session_id", required=False)
        reason = fields.text(request.reason, "reason", required=True)
        fields.done()
        if self._limiter is None:
            raise NotServedHere("LiftAttemptBlock needs the attempt limiter")
        lift = lift_block(self._limiter, account_id, session_id, by=caller().name, reason=reason)
        return pb.LiftAttemptBlockResponse(lifted=lift.lifted)
