"""One clock for every replica, through a real channel to an in-process server: a replica whose
clock is 2 s off the database's reports NOT_SERVING (and answers UNAVAILABLE), says so in one
log line and exports the offset; one on the database's time serves."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from license_svc.adapters.clock import utcnow
from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.support import Client


def health(client: Client) -> int:
    stub = health_pb2_grpc.HealthStub(client.channel)
    answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    return int(answer.status)


def test_a_replica_whose_clock_is_two_seconds_off_the_databases_is_not_serving(
    make_service: Callable[..., Service],
    serve_in_process: Callable[[Service], Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("ERROR", logger="license_svc.adapters.dbhealth"):
        service = make_service(utcnow, clock_offset_seconds=2.0)  # its real clock, shifted
        client = serve_in_process(service)
    assert health(client) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert 1.5 < service.monitor.offset < 2.5
    with pytest.raises(grpc.RpcError) as failure:
        client.entitlements.GetSeatAllowance(
            pb.GetSeatAllowanceRequest(account_id="a-1", product=pb.PRODUCT_INTEGRATIONS),
            metadata=Client.as_("integrations"),
            timeout=10,
        )
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    said = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(said) == 1 and "off the database's" in said[0]


def test_a_replica_on_the_databases_time_serves_and_exports_its_offset(
    make_service: Callable[..., Service], serve_in_process: Callable[[Service], Client]
) -> None:
    service = make_service(utcnow)
    client = serve_in_process(service)
    assert health(client) == health_pb2.HealthCheckResponse.SERVING
    assert abs(service.monitor.offset) < 0.5
