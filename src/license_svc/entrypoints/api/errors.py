"""Every error the API can answer, in one table: exception → gRPC code, message, reason.

A database fault — the database or the path to it failing, never the request — is UNAVAILABLE
with RetryInfo whatever the layer it surfaced through (psycopg raw, or wrapped by the library):
it is recognised by its SQLSTATE anywhere in the error's chain of causes (`FAULT_SQLSTATES`).

Answers use the rich error model: a `google.rpc.Status` whose details carry an `ErrorInfo`
(domain `licensing.fiscobridge.com`), plus `BadRequest` field violations for malformed
requests and `RetryInfo` when the caller should come back later. Anything not in the table is
an INTERNAL error with a generic message; the details go to the log, never to the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from psycopg_pool import PoolTimeout, TooManyRequests

from license_svc.access.auth import PermissionDenied, Unauthenticated
from license_svc.access.fields import BadRequest
from license_svc.adapters.application import KeyNotFound
from license_svc.adapters.groupcommit import QueueFull
from license_svc.adapters.pools import DeadlinePassed
from license_svc.attempts.limiter import TooManyAttempts
from license_svc.domain.codes import InvalidKeyFormat
from license_svc.domain.key import KeyNotAvailable, NotPermitted, NotRevocable
from license_svc.domain.seats import NoActiveSubscription, NoSeatAvailable
from license_svc.keys.app import (
    IssuingBusy,
    RequestIdExpired,
    RequestIdReused,
    UnsupportedProduct,
)
from license_svc.keys.dialog import WrongProduct
from license_svc.plans.book import PlanConflict
from license_svc.reads.live import WaitTimedOut
from license_svc.webhooks.endpoints import (
    DeliveryNotFound,
    EndpointDisabled,
    EndpointNotFound,
    TooManyEndpoints,
)

from .streaming import ConsumerTooSlow, StreamsExhausted

DOMAIN = "licensing.fiscobridge.com"


class NotDecodable(Exception):
    """The request body is not a valid message of the method's request type."""


class Unavailable(Exception):
    """A dependency (the database) is down or overloaded: safe to retry later."""


class NotServedHere(Exception):
    """A method this server was built without the part for (e.g. no limiter, no history)."""


@dataclass(frozen=True)
class Mapping:
    code: grpc.StatusCode
    reason: str
    message: Callable[[Exception], str] = str
    retry_after: Callable[[Exception], timedelta | None] = field(default=lambda _: None)
    metadata: Callable[[Exception], dict[str, str]] = field(default=lambda _: {})


def _fixed(text: str) -> Callable[[Exception], str]:
    return lambda _: text


def _retry_soon(code: grpc.StatusCode, reason: str, message: str | None = None) -> Mapping:
    """A refusal the caller may retry in a second (with `message`, else the exception's)."""
    return Mapping(
        code,
        reason,
        str if message is None else _fixed(message),
        retry_after=lambda _: timedelta(seconds=1),
    )


_UNAVAILABLE = _retry_soon(
    grpc.StatusCode.UNAVAILABLE,
    "UNAVAILABLE",
    "The service is temporarily unavailable, please retry",
)
# Every wait of this process is full (a pool, a group's queue): nothing was started.
_BUSY = _retry_soon(grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", "The service is busy, please retry")


# What a fault produces, by SQLSTATE: admin/crash shutdown and "cannot connect now" (57P0x),
# an idle transaction ended by its timeout (25P03), a statement ended by its timeout or a cancel
# (57014), a read-only transaction (25006: a failover's standby), serialization and deadlock
# (40001, 40P01), a lock wait that ran out (55P03), too many connections (53300); and the whole
# class 08 (connection exceptions). A psycopg connection error without a SQLSTATE (the socket
# went away) is one too.
FAULT_SQLSTATES = frozenset(
    {"57P01", "57P02", "57P03", "25P03", "57014", "25006", "40001", "40P01", "55P03", "53300"}
)
FAULT_CLASSES = ("08",)
CAUSES = 10  # how deep a chain of causes is searched


def is_fault(error: BaseException) -> bool:
    seen: BaseException | None = error
    for _ in range(CAUSES):
        if seen is None:
            return False
        if isinstance(seen, psycopg.Error):
            state = seen.sqlstate
            if state is None:
                if isinstance(seen, psycopg.OperationalError | psycopg.InterfaceError):
                    return True
            elif state in FAULT_SQLSTATES or state.startswith(FAULT_CLASSES):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


TABLE: dict[type[Exception], Mapping] = {
    InvalidKeyFormat: Mapping(
        grpc.StatusCode.INVALID_ARGUMENT, InvalidKeyFormat.reason, _fixed("Invalid key format")
    ),
    WrongProduct: Mapping(grpc.StatusCode.INVALID_ARGUMENT, WrongProduct.reason),
    KeyNotAvailable: Mapping(
        grpc.StatusCode.FAILED_PRECONDITION,
        KeyNotAvailable.reason,
        _fixed("This activation key is not available"),
    ),
    TooManyAttempts: Mapping(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_MANY_ATTEMPTS",
        _fixed("Too many failed attempts"),
        retry_after=lambda e: e.retry_after if isinstance(e, TooManyAttempts) else None,
    ),
    IssuingBusy: _retry_soon(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "ISSUING_BUSY",
        "Too many key batches are being issued at once, please retry",
    ),
    BadRequest: Mapping(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"),
    NotDecodable: Mapping(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"),
    RequestIdReused: Mapping(
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
        _fixed("This request_id was already used with different parameters"),
    ),
    RequestIdExpired: Mapping(
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_EXPIRED",
        _fixed(
            "This request_id's replay window has ended: its codes are not issued again"
            " (use a new request_id for new keys)"
        ),
    ),
    UnsupportedProduct: Mapping(
        grpc.StatusCode.INVALID_ARGUMENT,
        "PRODUCT_NOT_SUPPORTED",
        _fixed("Keys can only be issued for PRODUCT_INTEGRATIONS until a catalog exists"),
    ),
    KeyNotFound: Mapping(grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND", _fixed("Key not found")),
    NotPermitted: Mapping(grpc.StatusCode.PERMISSION_DENIED, "NOT_PERMITTED"),
    NotRevocable: Mapping(grpc.StatusCode.FAILED_PRECONDITION, "KEY_NOT_REVOCABLE"),
    Unauthenticated: Mapping(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
    PermissionDenied: Mapping(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
    Unavailable: _UNAVAILABLE,
    OperationalError: _UNAVAILABLE,
    InterfaceError: _UNAVAILABLE,
    PoolTimeout: _BUSY,
    QueueFull: _BUSY,
    TooManyRequests: _BUSY,  # a loop pool's waiting room is full
    PlanConflict: _retry_soon(
        grpc.StatusCode.ABORTED,
        "PLAN_BUSY",
        "The plan changed while this event was recorded, please retry",
    ),
    WaitTimedOut: Mapping(grpc.StatusCode.DEADLINE_EXCEEDED, "POSITION_NOT_REACHED"),
    NoActiveSubscription: Mapping(grpc.StatusCode.FAILED_PRECONDITION, "NO_ACTIVE_SUBSCRIPTION"),
    NoSeatAvailable: Mapping(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "NO_SEAT_AVAILABLE",
        retry_after=lambda e: e.retry_after if isinstance(e, NoSeatAvailable) else None,
        metadata=lambda e: (
            {"seats": str(e.seats), "seats_leased": str(e.seats_leased)}
            if isinstance(e, NoSeatAvailable)
            else {}
        ),
    ),
    DeadlinePassed: Mapping(grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
    NotServedHere: Mapping(grpc.StatusCode.UNIMPLEMENTED, "NOT_IMPLEMENTED"),
    StreamsExhausted: _retry_soon(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS"),
    ConsumerTooSlow: Mapping(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "CONSUMER_TOO_SLOW",
        metadata=lambda e: {"resume_after": str(getattr(e, "resume_after", 0))},
    ),
    EndpointNotFound: Mapping(grpc.StatusCode.NOT_FOUND, "WEBHOOK_ENDPOINT_NOT_FOUND"),
    DeliveryNotFound: Mapping(grpc.StatusCode.NOT_FOUND, "WEBHOOK_MESSAGE_NOT_FOUND"),
    EndpointDisabled: Mapping(grpc.StatusCode.FAILED_PRECONDITION, "WEBHOOK_ENDPOINT_DISABLED"),
    TooManyEndpoints: Mapping(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_WEBHOOK_ENDPOINTS"),
    # What a generated servicer base raises for a method no servicer overrides yet.
    NotImplementedError: Mapping(
        grpc.StatusCode.UNIMPLEMENTED, "NOT_IMPLEMENTED", _fixed("Method not implemented")
    ),
}
INTERNAL = Mapping(
    grpc.StatusCode.INTERNAL, "INTERNAL", _fixed("Internal error; it has been logged")
)
FAULT = TABLE[Unavailable]


def mapping_for(error: Exception) -> Mapping | None:
    for cls in type(error).__mro__:
        if cls in TABLE:
            return TABLE[cls]
    return FAULT if is_fault(error) else None


def to_status(error: Exception) -> grpc.Status:
    mapping = mapping_for(error) or INTERNAL
    message = mapping.message(error)
    details = [
        error_details_pb2.ErrorInfo(
            reason=mapping.reason, domain=DOMAIN, metadata=mapping.metadata(error)
        ),
    ]
    if isinstance(error, BadRequest):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in error.violations
                ]
            )
        )
    retry_after = mapping.retry_after(error)
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(retry_after)
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    status = status_pb2.Status(code=_rpc_code(mapping.code), message=message, details=packed)
    return rpc_status.to_status(status)


def _rpc_code(code: grpc.StatusCode) -> int:
    value: int = code.value[0]
    assert code_pb2.Code.Name(value)  # the two enumerations agree by construction
    return value
