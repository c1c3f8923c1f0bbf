"""The committed generated code matches protos/: `make proto` was run after the last change."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.support import REPO


def _generator():
    spec = importlib.util.spec_from_file_location("generate", REPO / "protos" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_generated_code_is_what_the_proto_generates(tmp_path: Path):
    generator = _generator()
    committed = REPO / "src" / "license_svc" / "entrypoints" / "api" / "gen"
    for fresh in generator.generate(tmp_path):
        assert fresh.read_text() == (committed / fresh.name).read_text(), (
            f"{fresh.name} is stale: run `make proto`"
        )


def test_the_contract_has_the_five_services_and_their_fixed_methods():
    from license_svc.entrypoints.api.gen import licensing_pb2 as pb

    services = {
        name: sorted(m.name for m in service.methods)
        for name, service in pb.DESCRIPTOR.services_by_name.items()
    }
    assert services == {
        "KeyService": ["GetKey", "IssueKeys", "ListKeys", "RevokeKey"],
        "ActivationService": ["ActivateKey", "ValidateKey"],
        "EntitlementService": [
            "GetAllowanceToken",
            "GetSeatAllowance",
            "GetSigningKeys",
            "GetSubscriptionSummary",
            "WatchSeatAllowance",
        ],
        "AuditService": ["GetKeyHistory", "StreamEvents"],
        "OpsService": [
            "GetKeyStats",
            "GetProjectionStatus",
            "GetSeatUsage",
            "LiftAttemptBlock",
            "ListExpiringSubscriptions",
        ],
        "BillingService": ["RecordPlanEvent"],
        "SeatService": ["AcquireSeat", "ListSeatLeases", "ReleaseSeat", "RenewSeats"],
        "WebhookService": [
            "CreateWebhookEndpoint",
            "DeleteWebhookEndpoint",
            "ListWebhookDeliveries",
            "ListWebhookEndpoints",
            "RedeliverWebhook",
        ],
    }
    assert pb.DESCRIPTOR.package == "fiscobridge.licensing.v1"
    imports = [d.name for d in pb.DESCRIPTOR.dependencies]
    assert all(name.startswith("google/protobuf/") for name in imports)
