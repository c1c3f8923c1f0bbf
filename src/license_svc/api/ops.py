"""OpsService: counts, expiring subscriptions and projection status for dashboards."""

from __future__ import annotations

import grpc

from .errors import NotImplementedYet
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc


class OpsServicer(pb_grpc.OpsServiceServicer):
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
        raise NotImplementedYet("GetProjectionStatus arrives with the projections (issue 3)")
