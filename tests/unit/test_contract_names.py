"""The contract's names: every response is `<Method>Response` (buf's STANDARD rule) but for the
two the product specification names, which buf.yaml records as the only exceptions."""

from __future__ import annotations

from license_svc.entrypoints.api.gen import licensing_pb2 as pb

RECORDED_EXCEPTIONS = {
    ("EntitlementService", "GetSubscriptionSummary"): "SubscriptionSummary",
    ("EntitlementService", "GetSeatAllowance"): "SeatAllowance",
}


def test_every_response_but_the_recorded_two_is_named_after_its_method():
    found = {}
    for service in pb.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            name = method.output_type.name
            if name != f"{method.name}Response":
                found[(service.name, method.name)] = name
    assert found == RECORDED_EXCEPTIONS
