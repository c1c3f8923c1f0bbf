"""AuditService: a key's full history; the stream of every event."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from license_svc.application import LicensingApp

from . import convert
from .errors import NotImplementedYet
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc
from .keys import key_id_from
from .validation import Fields


class AuditServicer(pb_grpc.AuditServiceServicer):
    def __init__(self, app: LicensingApp) -> None:
        self._app = app

    def GetKeyHistory(
        self, request: pb.GetKeyHistoryRequest, context: grpc.ServicerContext
    ) -> pb.GetKeyHistoryResponse:
        if request.subscription_id:  # a plan bought online, by the provider's subscription id
            check = Fields()
            subscription_id = check.identifier(request.subscription_id, "subscription_id")
            check.done()
            key_id = self._app.identity.plan_id(subscription_id)
        else:
            key_id = key_id_from(self._app, request.key_id, request.code)
        return pb.GetKeyHistoryResponse(
            key_id=str(key_id),
            events=[
                pb.StoredEvent(
                    type=entry.type,
                    version=entry.version,
                    recorded_at=convert.timestamp(entry.recorded_at),
                    position=entry.position,
                    payload=convert.payload(entry.payload),
                    key_id=str(key_id),
                )
                for entry in self._app.history(key_id)
            ],
        )

    def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StoredEvent]:
        raise NotImplementedYet("StreamEvents is not built yet: it has no issue of its own so far")
