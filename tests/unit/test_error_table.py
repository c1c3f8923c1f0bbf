"""The one error table: every domain error maps to a code and a reason; nothing becomes UNKNOWN."""

from __future__ import annotations

from datetime import timedelta

import grpc
import psycopg
import psycopg.errors
import pytest
from google.rpc import error_details_pb2, status_pb2

from license_svc.attempts.limiter import TooManyAttempts
from license_svc.domain.codes import InvalidKeyFormat
from license_svc.domain.key import KeyNotAvailable
from license_svc.domain.tiers import Product
from license_svc.entrypoints.api import errors
from license_svc.keys.app import IssuingBusy
from license_svc.keys.dialog import WrongProduct


def decoded(error: Exception) -> tuple[grpc.StatusCode, str, dict[str, object]]:
    status = errors.to_status(error)
    metadata = dict(status.trailing_metadata)  # type: ignore[attr-defined]
    rich = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
    found: dict[str, object] = {}
    for kind in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
    ):
        for detail in rich.details:
            if detail.Is(kind.DESCRIPTOR):
                value = kind()
                detail.Unpack(value)
                found[kind.__name__] = value
    assert rich.message == status.details  # type: ignore[attr-defined]
    return status.code, status.details, found  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "code", "message", "reason"),
    [
        (
            InvalidKeyFormat(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Invalid key format",
            "INVALID_KEY_FORMAT",
        ),
        (
            KeyNotAvailable(),
            grpc.StatusCode.FAILED_PRECONDITION,
            "This activation key is not available",
            "KEY_NOT_AVAILABLE",
        ),
        (
            WrongProduct(Product.CLOUD_POS, Product.INTEGRATIONS),
            grpc.StatusCode.INVALID_ARGUMENT,
            "This is a Cloud POS key. INT- keys activate Integrations only.",
            "WRONG_PRODUCT",
        ),
        (
            TooManyAttempts(timedelta(minutes=15)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Too many failed attempts",
            "TOO_MANY_ATTEMPTS",
        ),
    ],
)
def test_the_dialog_errors_carry_the_exact_texts_and_reasons_of_the_spec(
    error: Exception, code: grpc.StatusCode, message: str, reason: str
) -> None:
    got_code, got_message, details = decoded(error)
    assert (got_code, got_message) == (code, message)
    info = details["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == (reason, "licensing.fiscobridge.com")


def test_too_many_attempts_tells_when_to_retry() -> None:
    _, _, details = decoded(TooManyAttempts(timedelta(minutes=14, seconds=30)))
    retry = details["RetryInfo"]
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToTimedelta() == timedelta(minutes=14, seconds=30)


def test_a_caller_that_found_every_issuing_slot_taken_is_told_to_retry() -> None:
    code, message, details = decoded(IssuingBusy())
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry" in message
    info, retry = details["ErrorInfo"], details["RetryInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert info.reason == "ISSUING_BUSY"
    assert retry.retry_delay.ToTimedelta() > timedelta(0)


def test_a_bad_request_lists_its_field_violations() -> None:
    error = errors.BadRequest([("account_id", "is required"), ("seats", "must be between")])
    code, _, details = decoded(error)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    bad = details["BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["account_id", "seats"]


def test_an_unexpected_exception_is_internal_with_a_generic_message_never_unknown() -> None:
    code, message, details = decoded(RuntimeError("secret detail INT-AAAA-BBBB-CCCC"))
    assert code is grpc.StatusCode.INTERNAL
    assert "secret" not in message and "INT-" not in message
    info = details["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "INTERNAL"


def test_every_mapping_in_the_table_names_a_code_other_than_ok_or_unknown() -> None:
    for mapping in errors.TABLE.values():
        assert mapping.code not in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN)
        assert mapping.reason


FAULTS = [
    "08000", "08001", "08003", "08004", "08006", "08P01",
    "57P01", "57P02", "57P03", "25P03", "57014", "25006", "40001", "40P01", "55P03", "53300",
]  # fmt: skip


def raised_by_the_library(error: Exception) -> Exception:
    """The error as the eventsourcing library re-raises a psycopg one (its cause kept)."""
    from eventsourcing import persistence

    wrapper = {
        psycopg.InternalError: persistence.InternalError,
        psycopg.OperationalError: persistence.OperationalError,
    }
    for kind, wrapped in wrapper.items():
        if isinstance(error, kind):
            try:
                raise wrapped(str(error)) from error
            except wrapped as raised:
                return raised
    return error


@pytest.mark.parametrize("sqlstate", FAULTS)
@pytest.mark.parametrize("layer", ["psycopg", "library"])
def test_every_fault_sqlstate_answers_unavailable_with_retry_info_never_internal(
    sqlstate: str, layer: str
) -> None:
    error: Exception = psycopg.errors.lookup(sqlstate)("the database went away")
    if layer == "library":
        error = raised_by_the_library(error)
    code, _, details = decoded(error)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "RetryInfo" in details


def test_a_connection_lost_without_a_sqlstate_is_unavailable_and_a_real_bug_stays_internal() -> (
    None
):
    assert decoded(psycopg.OperationalError("server closed the connection"))[0] == (
        grpc.StatusCode.UNAVAILABLE
    )
    assert decoded(psycopg.errors.lookup("42703")("no such column"))[0] == (
        grpc.StatusCode.INTERNAL
    )
    assert decoded(psycopg.errors.lookup("23505")("duplicate key"))[0] == grpc.StatusCode.INTERNAL
