"""AuditService.GetKeyHistory through a real server process (rules §7)."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from license_svc.domain import codes
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich, unique
from tests.support import Client


def history(client: Client, role: str = "auditor", **by: str) -> pb.GetKeyHistoryResponse:
    answer: pb.GetKeyHistoryResponse = client.audit.GetKeyHistory(
        pb.GetKeyHistoryRequest(**by), metadata=Client.as_(role), timeout=10
    )
    return answer


def test_the_history_by_code_and_by_key_id_lists_every_event_in_order(client: Client) -> None:
    batch = client.issue(1, tier=pb.TIER_GROWTH, seats=4, period_months=6)
    issued = batch.keys[0]
    account = unique("acct")
    activated = client.activate(issued.code, account, unique("sess"))
    revoked = client.keys.RevokeKey(
        pb.RevokeKeyRequest(key_id=issued.key_id, reason="fraud"),
        metadata=Client.as_("ops"),
        timeout=10,
    )
    by_code = history(client, code=issued.code.lower())
    by_id = history(client, role="ops", key_id=issued.key_id)
    assert by_code == by_id
    assert by_code.key_id == issued.key_id
    events = by_code.events
    assert [(e.type, e.version, e.key_id) for e in events] == [
        ("KeyIssued", 1, issued.key_id),
        ("KeyActivated", 2, issued.key_id),
        ("KeyRevoked", 3, issued.key_id),
    ]
    assert [e.position for e in events] == [batch.position, activated.position, revoked.position]
    assert events[0].position < events[1].position < events[2].position
    recorded = [e.recorded_at.ToDatetime() for e in events]
    assert all(e.HasField("recorded_at") for e in events)
    assert recorded == sorted(recorded)

    issued_payload = dict(events[0].payload)
    assert issued_payload["product"] == "integrations"
    assert issued_payload["tier"] == "growth"
    assert (issued_payload["seats"], issued_payload["period_months"]) == (4, 6)
    assert (issued_payload["reseller_id"], issued_payload["batch_id"]) == ("acme", batch.batch_id)
    assert issued_payload["hint"] == issued.hint

    activated_payload = dict(events[1].payload)
    assert activated_payload["account_id"] == account
    entitlement = activated.entitlement
    for field in ("period_starts_at", "period_ends_at"):
        stamp = getattr(entitlement, field).ToDatetime(tzinfo=UTC)
        assert datetime.fromisoformat(str(activated_payload[field])) == stamp
    assert activated_payload["activated_at"] == activated_payload["period_starts_at"]

    revoked_payload = dict(events[2].payload)
    assert (revoked_payload["reason"], revoked_payload["revoked_by"]) == ("fraud", "ops")

    text = str(by_code)
    assert issued.code not in text and issued.code.replace("-", "") not in text


def test_the_history_of_a_key_revoked_by_its_reseller_has_two_events(client: Client) -> None:
    issued = client.issue(1).keys[0]
    client.keys.RevokeKey(
        pb.RevokeKeyRequest(code=issued.code, reason="refund"),
        metadata=Client.as_("acme"),
        timeout=10,
    )
    events = history(client, key_id=issued.key_id).events
    assert [e.type for e in events] == ["KeyIssued", "KeyRevoked"]
    assert events[1].payload["revoked_by"] == "reseller:acme"


@pytest.mark.parametrize(
    "by",
    [
        {"code": "INT-NOPE"},
        {"key_id": "not-a-uuid"},
        {},
    ],
    ids=["malformed-code", "malformed-id", "neither"],
)
def test_a_malformed_history_request_is_invalid_argument(
    client: Client, by: dict[str, str]
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        history(client, **by)
    assert rich(failure.value).code is grpc.StatusCode.INVALID_ARGUMENT


def test_the_history_of_an_unknown_key_is_not_found(client: Client) -> None:
    for by in (
        {"code": codes.generate("INT").text()},
        {"key_id": "00000000-0000-4000-8000-000000000000"},
    ):
        with pytest.raises(grpc.RpcError) as failure:
            history(client, **by)
        error = rich(failure.value)
        assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND")
