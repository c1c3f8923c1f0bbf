"""Who may call what (rules §8), and how bearer tokens become principals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from license_svc.access.auth import (
    ACCESS,
    KNOWN_HEADERS,
    PermissionDenied,
    Principal,
    Role,
    TokenTable,
    Unauthenticated,
    authorize,
    needs_token,
)
from license_svc.config import DEV_TOKENS
from license_svc.entrypoints.api.gen import licensing_pb2 as pb

RES, POR, INT, AUD, OPS = "reseller", "portal", "integrations", "auditor", "ops"
BIL = "billing"
# rules §8's table (docs/contract.md), written out independently of ACCESS.
SPEC_ACCESS = {
    "KeyService/IssueKeys": {RES, OPS},
    "KeyService/RevokeKey": {RES, OPS},
    "KeyService/GetKey": {RES, AUD, OPS},
    "KeyService/ListKeys": {RES, AUD, OPS},
    "ActivationService/ValidateKey": {POR},
    "ActivationService/ActivateKey": {POR},
    "EntitlementService/GetSubscriptionSummary": {POR, INT, AUD, OPS},
    "EntitlementService/GetSeatAllowance": {POR, INT, AUD, OPS},
    "EntitlementService/WatchSeatAllowance": {POR, INT, OPS},
    "EntitlementService/GetAllowanceToken": {POR, INT, OPS},
    "EntitlementService/GetSigningKeys": {RES, POR, INT, AUD, OPS, BIL},  # any authenticated
    "AuditService/GetKeyHistory": {AUD, OPS},
    # A reseller only with its own reseller_id filter (rules §14; the servicer scopes it).
    "AuditService/StreamEvents": {RES, AUD, OPS},
    "OpsService/GetKeyStats": {RES, OPS},
    "OpsService/ListExpiringSubscriptions": {RES, OPS},
    "OpsService/GetProjectionStatus": {OPS},
    "OpsService/LiftAttemptBlock": {OPS},
    "OpsService/GetSeatUsage": {RES, OPS},
    "BillingService/RecordPlanEvent": {BIL, OPS},
    "WebhookService/CreateWebhookEndpoint": {RES, OPS},
    "WebhookService/ListWebhookEndpoints": {RES, OPS},
    "WebhookService/DeleteWebhookEndpoint": {RES, OPS},
    "WebhookService/ListWebhookDeliveries": {RES, OPS},
    "WebhookService/RedeliverWebhook": {RES, OPS},
    "SeatService/AcquireSeat": {INT, OPS},
    "SeatService/RenewSeats": {INT, OPS},
    "SeatService/ReleaseSeat": {INT, OPS},
    "SeatService/ListSeatLeases": {POR, INT, OPS},
}
PKG = "/fiscobridge.licensing.v1."


def contract_methods() -> list[str]:
    return [
        f"{service.name}/{method.name}"
        for service in pb.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def test_every_method_of_the_contract_has_a_row_in_the_access_table() -> None:
    assert sorted(contract_methods()) == sorted(SPEC_ACCESS)
    assert {m.removeprefix(PKG) for m in ACCESS} == set(SPEC_ACCESS)


@pytest.mark.parametrize("method", sorted(SPEC_ACCESS))
@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_call_exactly_the_methods_of_the_spec_table(method: str, role: Role) -> None:
    principal = Principal(role, "acme" if role is Role.RESELLER else "")
    if role.value in SPEC_ACCESS[method]:
        authorize(PKG + method, principal)
    else:
        with pytest.raises(PermissionDenied):
            authorize(PKG + method, principal)


def test_a_method_outside_the_table_is_denied_to_every_role() -> None:
    for role in Role:
        with pytest.raises(PermissionDenied):
            authorize(PKG + "KeyService/DeleteEverything", Principal(role))


def test_health_and_reflection_need_no_token_and_everything_else_does() -> None:
    assert not needs_token("/grpc.health.v1.Health/Check")
    assert not needs_token("/grpc.health.v1.Health/Watch")
    assert not needs_token("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert not needs_token("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    for method in SPEC_ACCESS:
        assert needs_token(PKG + method)


def test_the_development_token_file_has_two_resellers_and_every_other_role() -> None:
    entries = json.loads(DEV_TOKENS.read_text())
    resellers = {e["reseller_id"] for e in entries if e["role"] == "reseller"}
    assert len(resellers) >= 2
    assert {e["role"] for e in entries} == {r.value for r in Role}
    table = TokenTable.from_file(DEV_TOKENS)
    for entry in entries:
        principal = table.authenticate((("authorization", f"Bearer {entry['token']}"),))
        assert principal.role.value == entry["role"]
        assert principal.reseller_id == entry.get("reseller_id", "")


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("x-other", "value"),),
        (("authorization", "Bearer "),),
        (("authorization", "Basic dev-ops"),),
        (("authorization", "dev-ops"),),
        (("authorization", "Bearer not-a-known-token"),),
    ],
    ids=["none", "other-header", "empty-bearer", "basic", "no-scheme", "unknown"],
)
def test_a_missing_malformed_or_unknown_token_is_unauthenticated(
    metadata: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(Unauthenticated):
        TokenTable.from_file(DEV_TOKENS).authenticate(metadata)


def test_the_bearer_scheme_is_case_insensitive_and_the_header_may_arrive_as_bytes() -> None:
    table = TokenTable.from_file(DEV_TOKENS)
    assert table.authenticate((("authorization", "bearer dev-ops"),)).role is Role.OPS
    assert table.authenticate((("authorization", b"Bearer dev-portal"),)).role is Role.PORTAL


@pytest.mark.parametrize(
    "entries",
    [
        [{"token": "t", "role": "reseller"}],
        [{"token": "t", "role": "superuser"}],
        [{"role": "ops"}],
    ],
    ids=["reseller-without-id", "unknown-role", "no-token"],
)
def test_a_token_file_with_an_incomplete_entry_is_refused(entries: object, tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError):
        TokenTable.from_file(path)


def test_a_header_seen_before_stops_working_when_a_reload_drops_its_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    kept, gone = {"token": "kept", "role": "ops"}, {"token": "gone", "role": "ops"}
    path.write_text(json.dumps([kept, gone]))
    table = TokenTable.from_file(path)
    for _ in range(2):  # the second call is answered from the headers already seen
        assert table.authenticate((("authorization", "Bearer gone"),)).role is Role.OPS
    path.write_text(json.dumps([kept]))
    assert table.reload()
    with pytest.raises(Unauthenticated):
        table.authenticate((("authorization", "Bearer gone"),))
    assert table.authenticate((("authorization", "Bearer kept"),)).role is Role.OPS


def test_only_known_tokens_are_remembered_and_only_so_many_spellings() -> None:
    table = TokenTable.from_file(DEV_TOKENS)
    for spaces in range(KNOWN_HEADERS + 50):
        with pytest.raises(Unauthenticated):
            table.authenticate((("authorization", "Bearer unknown" + " " * spaces + "x"),))
        table.authenticate((("authorization", "Bearer " + " " * spaces + "dev-ops"),))
    assert len(table._entries.known_headers) == KNOWN_HEADERS


@pytest.mark.parametrize(
    "second", ["Bearer dev-ops", "Bearer not-a-known-token", "Basic x"], ids=str
)
def test_more_than_one_authorization_header_is_unauthenticated_whatever_they_hold(
    second: str,
) -> None:
    table = TokenTable.from_file(DEV_TOKENS)
    for metadata in (
        (("authorization", "Bearer dev-ops"), ("authorization", second)),
        (("authorization", second), ("authorization", "Bearer dev-ops")),
    ):
        for _ in range(2):  # also once the good header is a known one
            with pytest.raises(Unauthenticated, match="one authorization"):
                table.authenticate(metadata)


BOUND = "spiffe://fiscobridge.internal/billing"


def bound_table(tmp_path: Path) -> TokenTable:
    path = tmp_path / "tokens.json"
    entry = {"identity": BOUND, "token": "bound-billing", "role": "billing"}
    path.write_text(json.dumps([entry, {"token": "plain", "role": "ops"}]))
    return TokenTable.from_file(path)


def peer(*uris: str) -> object:
    return lambda: {"peer_uri": [u.encode() for u in uris]}


def test_a_token_bound_to_an_identity_is_accepted_only_from_that_certificate(
    tmp_path: Path,
) -> None:
    table = bound_table(tmp_path)
    token = (("authorization", "Bearer bound-billing"),)
    for _ in range(2):  # the header remembered after the first call is still checked
        assert table.authenticate(token, peer(BOUND)).role is Role.BILLING  # type: ignore[arg-type]
    for other in (peer("spiffe://fiscobridge.internal/other"), peer(), None):
        with pytest.raises(Unauthenticated, match="bound"):
            table.authenticate(token, other)  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated):  # the certificate alone is not the entry either
        table.authenticate((), peer(BOUND))  # type: ignore[arg-type]
    assert table.authenticate((("authorization", "Bearer plain"),)).role is Role.OPS
