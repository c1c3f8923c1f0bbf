"""Bearer tokens and roles (rules §8) through a real server process."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import RichError, rich, stored_topics, unique
from tests.support import Client, issue_request

Call = Callable[[Client, tuple[tuple[str, str], ...]], Any]


def issue_keys(client: Client, metadata: tuple[tuple[str, str], ...]) -> Any:
    request = issue_request(
        tier=pb.TIER_STARTER, seats=1, period_months=1, request_id=unique("req")
    )
    return client.keys.IssueKeys(request, metadata=metadata, timeout=10)


def validate_key(client: Client, metadata: tuple[tuple[str, str], ...]) -> Any:
    request = pb.ValidateKeyRequest(
        code="INT-NOPE", account_id="a", session_id="s", product=pb.PRODUCT_INTEGRATIONS
    )
    return client.activation.ValidateKey(request, metadata=metadata, timeout=10)


def get_key(client: Client, metadata: tuple[tuple[str, str], ...]) -> Any:
    request = pb.GetKeyRequest(key_id="00000000-0000-4000-8000-000000000000")
    return client.keys.GetKey(request, metadata=metadata, timeout=10)


def revoke_key(client: Client, metadata: tuple[tuple[str, str], ...]) -> Any:
    request = pb.RevokeKeyRequest(key_id="00000000-0000-4000-8000-000000000000")
    return client.keys.RevokeKey(request, metadata=metadata, timeout=10)


def key_history(client: Client, metadata: tuple[tuple[str, str], ...]) -> Any:
    request = pb.GetKeyHistoryRequest(key_id="00000000-0000-4000-8000-000000000000")
    return client.audit.GetKeyHistory(request, metadata=metadata, timeout=10)


def key_stats(client: Client, metadata: tuple[tuple[str, str], ...]) -> Any:
    return client.ops.GetKeyStats(pb.GetKeyStatsRequest(), metadata=metadata, timeout=10)


CALLS: dict[str, Call] = {
    "IssueKeys": issue_keys,
    "ValidateKey": validate_key,
    "GetKey": get_key,
    "RevokeKey": revoke_key,
    "GetKeyHistory": key_history,
    "GetKeyStats": key_stats,
}


def refused(call: Callable[[], Any]) -> RichError:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return rich(failure.value)


@pytest.mark.parametrize("method", sorted(CALLS))
@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer not-a-token"),), (("authorization", "dev-ops"),)],
    ids=["none", "unknown", "no-scheme"],
)
def test_a_call_without_a_valid_token_is_unauthenticated(
    client: Client, method: str, metadata: tuple[tuple[str, str], ...]
) -> None:
    error = refused(lambda: CALLS[method](client, metadata))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    ("method", "role"),
    [
        ("IssueKeys", "portal"),
        ("IssueKeys", "auditor"),
        ("ValidateKey", "acme"),
        ("ValidateKey", "ops"),
        ("GetKey", "portal"),
        ("GetKey", "integrations"),
        ("RevokeKey", "auditor"),
        ("GetKeyHistory", "acme"),
        ("GetKeyHistory", "portal"),
        ("GetKeyStats", "auditor"),
    ],
)
def test_a_role_outside_the_table_is_permission_denied(
    client: Client, method: str, role: str
) -> None:
    error = refused(lambda: CALLS[method](client, Client.as_(role)))
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


def test_health_and_reflection_answer_without_a_token(client: Client) -> None:
    answer = client.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    [reply] = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for s in reply.list_services_response.service}
    assert "fiscobridge.licensing.v1.ActivationService" in names


def test_a_reseller_sees_its_own_key_and_another_reseller_neither_sees_nor_revokes_it(
    client: Client, sql: psycopg.Connection
) -> None:
    issued = client.issue(1, reseller="acme").keys[0]
    own = client.keys.GetKey(
        pb.GetKeyRequest(key_id=issued.key_id), metadata=Client.as_("acme"), timeout=10
    )
    assert (own.key.reseller_id, own.key.status) == ("acme", pb.KEY_STATUS_ISSUED)
    for by in ({"key_id": issued.key_id}, {"code": issued.code}):
        get = partial(
            client.keys.GetKey, pb.GetKeyRequest(**by), metadata=Client.as_("globex"), timeout=10
        )
        seen = refused(get)
        assert (seen.code, seen.reason) == (grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND")
        revoke = partial(
            client.keys.RevokeKey,
            pb.RevokeKeyRequest(reason="mine now", **by),
            metadata=Client.as_("globex"),
            timeout=10,
        )
        revoked = refused(revoke)
        assert (revoked.code, revoked.reason) == (grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND")
    assert stored_topics(sql, issued.key_id) == ["KeyIssued"]
    for role in ("auditor", "ops"):
        seen_by = client.keys.GetKey(
            pb.GetKeyRequest(code=issued.code), metadata=Client.as_(role), timeout=10
        )
        assert seen_by.key.status == pb.KEY_STATUS_ISSUED


def test_a_reseller_cannot_issue_keys_under_another_reseller_id(
    client: Client, sql: psycopg.Connection
) -> None:
    error = refused(lambda: client.issue(1, reseller="globex", reseller_id="acme"))
    assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert client.issue(1, reseller="globex", reseller_id="globex").keys
    assert client.issue(1, reseller="ops", reseller_id="acme").keys


def test_a_reseller_revokes_its_own_unredeemed_key(client: Client) -> None:
    issued = client.issue(1, reseller="globex", reseller_id="globex").keys[0]
    answer = client.keys.RevokeKey(
        pb.RevokeKeyRequest(code=issued.code, reason="refund"),
        metadata=Client.as_("globex"),
        timeout=10,
    )
    assert (answer.key.status, answer.key.revoked_reason) == (pb.KEY_STATUS_REVOKED, "refund")
    assert answer.key.revoked_by == "reseller:globex"
    assert answer.position > 0


def test_a_reseller_cannot_revoke_an_activated_key_but_ops_can(
    client: Client, sql: psycopg.Connection
) -> None:
    issued = client.issue(1, reseller="acme").keys[0]
    client.activate(issued.code, unique("acct"), unique("sess"))
    error = refused(
        lambda: client.keys.RevokeKey(
            pb.RevokeKeyRequest(key_id=issued.key_id, reason="refund"),
            metadata=Client.as_("acme"),
            timeout=10,
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_PERMITTED")
    assert stored_topics(sql, issued.key_id) == ["KeyIssued", "KeyActivated"]
    answer = client.keys.RevokeKey(
        pb.RevokeKeyRequest(key_id=issued.key_id, reason="fraud"),
        metadata=Client.as_("ops"),
        timeout=10,
    )
    assert (answer.key.status, answer.key.revoked_by) == (pb.KEY_STATUS_REVOKED, "ops")
    assert stored_topics(sql, issued.key_id) == ["KeyIssued", "KeyActivated", "KeyRevoked"]


def test_a_call_with_two_authorization_headers_is_unauthenticated_even_if_the_first_is_good(
    client: Client, sql: psycopg.Connection
) -> None:
    two = (*Client.as_("acme"), ("authorization", "Bearer not-a-token"))
    error = refused(lambda: issue_keys(client, two))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    error = refused(lambda: issue_keys(client, (*Client.as_("acme"), *Client.as_("acme"))))
    assert error.code is grpc.StatusCode.UNAUTHENTICATED
