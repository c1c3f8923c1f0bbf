"""The server's "no", read from its rich status (`google.rpc.Status` in the trailers, via
grpcio-status): the code, the `ErrorInfo` reason, the message, `RetryInfo`'s delay and
`BadRequest`'s field violations — for people one line, for scripts one JSON object."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class Refusal:
    code: str  # the gRPC status code's name, e.g. RESOURCE_EXHAUSTED
    message: str
    reason: str = ""  # ErrorInfo.reason, e.g. TOO_MANY_ATTEMPTS
    retry_after_seconds: float | None = None  # RetryInfo.retry_delay
    field_violations: list[dict[str, str]] = field(default_factory=list)
    target: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "retry_after_seconds": self.retry_after_seconds,
            "field_violations": self.field_violations,
        }

    def line(self) -> str:
        """One line for a person: the server's message, its reason (or code), when to retry,
        and which fields were wrong."""
        if self.code == "UNAUTHENTICATED":
            return f"the server did not accept the token ({self.message or self.code})"
        if self.code == "UNAVAILABLE" and not self.reason:
            return f"cannot reach the server at {self.target}: {self.message}"
        text = f"{self.message} ({self.reason or self.code})" if self.message else self.code
        if self.field_violations:
            text += ": " + "; ".join(
                f"{v['field']}: {v['description']}" for v in self.field_violations
            )
        if self.retry_after_seconds is not None:
            text += f"; try again in {wait_text(self.retry_after_seconds)}"
        return text


def wait_text(seconds: float) -> str:
    """Whole minutes, rounded up (a person retrying early is refused again); under a minute
    in seconds."""
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    return f"{math.ceil(seconds / 60)} min"


def refusal_of(error: grpc.RpcError, target: str) -> Refusal:
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    message: str = error.details() or ""  # type: ignore[attr-defined]
    reason, retry, violations = "", None, []
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:  # trailers that disagree with the status: keep the plain answer
        status = None
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            delay = error_details_pb2.RetryInfo()
            detail.Unpack(delay)
            retry = delay.retry_delay.seconds + delay.retry_delay.nanos / 1e9
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [
                {"field": v.field, "description": v.description} for v in bad.field_violations
            ]
    return Refusal(code.name, message, reason, retry, violations, target)
