"""EntitlementService: the subscription summary and the seat allowance, read from the views."""

from __future__ import annotations

import grpc

from .errors import NotImplementedYet
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc


class EntitlementServicer(pb_grpc.EntitlementServiceServicer):
    def GetSubscriptionSummary(
        self, request: pb.GetSubscriptionSummaryRequest, context: grpc.ServicerContext
    ) -> pb.SubscriptionSummary:
        raise NotImplementedYet("GetSubscriptionSummary arrives with the projections (issue 3)")

    def GetSeatAllowance(
        self, request: pb.GetSeatAllowanceRequest, context: grpc.ServicerContext
    ) -> pb.SeatAllowance:
        raise NotImplementedYet("GetSeatAllowance arrives with the projections (issue 3)")
