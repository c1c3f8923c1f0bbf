"""Odd and hostile requests get a deliberate status: never UNKNOWN, never INTERNAL."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich
from tests.support import Client

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
ANY_ENUM = st.integers(min_value=-5, max_value=100)


def status_of(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return rich(error).code
    return grpc.StatusCode.OK


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(code=TEXT, account=TEXT, session=TEXT, product=ANY_ENUM)
def test_any_text_in_the_activation_dialog_gets_a_deliberate_answer(
    client: Client, code: str, account: str, session: str, product: int
) -> None:
    for method, message in (
        (client.activation.ValidateKey, pb.ValidateKeyRequest),
        (client.activation.ActivateKey, pb.ActivateKeyRequest),
    ):
        request = message(
            code=code,
            account_id=account,
            session_id=session,
            product=product,  # type: ignore[arg-type]
        )
        call = partial(method, request, metadata=Client.as_("portal"), timeout=10)
        assert status_of(call) in {
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    reseller_id=TEXT,
    product=ANY_ENUM,
    tier=ANY_ENUM,
    seats=st.integers(-(2**31), 2**31 - 1),
    period=st.integers(-(2**31), 2**31 - 1),
    count=st.sampled_from([-1, 0, 10_001, 2**31 - 1, -(2**31)]),
    request_id=TEXT,
)
def test_out_of_range_issue_requests_are_invalid_argument_or_permission_denied(
    client: Client,
    reseller_id: str,
    product: int,
    tier: int,
    seats: int,
    period: int,
    count: int,
    request_id: str,
) -> None:
    request = pb.IssueKeysRequest(
        reseller_id=reseller_id,
        product=product,  # type: ignore[arg-type]
        tier=tier,  # type: ignore[arg-type]
        seats=seats,
        period_months=period,
        count=count,
        request_id=request_id,
    )
    for role in ("acme", "ops"):
        call = partial(client.keys.IssueKeys, request, metadata=Client.as_(role), timeout=10)
        assert status_of(call) in {
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.PERMISSION_DENIED,
        }


@pytest.mark.parametrize(
    "by",
    [
        {"key_id": "not-a-uuid"},
        {"key_id": "x" * 5000},
        {"code": "INT-" + "A" * 5000},
        {"code": "\x00"},
        {},
    ],
    ids=["bad-id", "huge-id", "huge-code", "nul-code", "nothing"],
)
def test_key_lookups_with_malformed_ids_are_invalid_argument(
    client: Client, by: dict[str, str]
) -> None:
    calls = [
        lambda: client.keys.GetKey(pb.GetKeyRequest(**by), metadata=Client.as_("ops"), timeout=10),
        lambda: client.keys.RevokeKey(
            pb.RevokeKeyRequest(**by), metadata=Client.as_("ops"), timeout=10
        ),
        lambda: client.audit.GetKeyHistory(
            pb.GetKeyHistoryRequest(**by), metadata=Client.as_("auditor"), timeout=10
        ),
    ]
    for call in calls:
        assert status_of(call) is grpc.StatusCode.INVALID_ARGUMENT


def test_an_overlong_revoke_reason_is_invalid_argument(client: Client) -> None:
    issued = client.issue(1).keys[0]
    seen = status_of(
        lambda: client.keys.RevokeKey(
            pb.RevokeKeyRequest(key_id=issued.key_id, reason="r" * 501),
            metadata=Client.as_("ops"),
            timeout=10,
        )
    )
    assert seen is grpc.StatusCode.INVALID_ARGUMENT
