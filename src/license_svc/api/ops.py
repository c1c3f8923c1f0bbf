"""OpsService: counts, expiring subscriptions and projection status for dashboards."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from readpath.live import LiveViews

from .errors import NotImplementedYet
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc


class OpsServicer(pb_grpc.OpsServiceServicer):
    def __init__(self, views: LiveViews, head_position: Callable[[], int | None]) -> None:
        self._views = views
        self._head_position = head_position

    def GetKeyStats(
        self, request: pb.GetKeyStatsRequest, context: grpc.ServicerContext
    ) -> pb.GetKeyStatsResponse:
        raise NotImplementedYet("GetKeyStats is not built yet: it has no issue of its own so far")

    def ListExpiringSubscriptions(
        self, request: pb.ListExpiringSubscriptionsRequest, context: grpc.ServicerContext
    ) -> pb.ListExpiringSubscriptionsResponse:
        raise NotImplementedYet(
            "ListExpiringSubscriptions is not built yet: it has no issue of its own so far"
        )

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
