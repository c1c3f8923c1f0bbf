"""Helpers shared by the integration and end-to-end tests (no fixtures: see conftest.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
import psycopg
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from license_svc.keys.app import LicensingApp

# The eventsourcing factory names the events table after the application.
EVENTS_TABLE = f"{LicensingApp.name}_events"
NOT_AVAILABLE = "This activation key is not available"
WRONG_PRODUCT_TEXT = "This is a Cloud POS key. INT- keys activate Integrations only."


def unique(prefix: str) -> str:
    """An id no earlier run of the suite has used: the test database outlives a run."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def count_events(sql: psycopg.Connection) -> int:
    row = sql.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
    assert row is not None
    return int(row[0])


def stored_topics(sql: psycopg.Connection, key_id: str | uuid.UUID) -> list[str]:
    """The bare event names stored for one key, in version order."""
    rows = sql.execute(
        f"SELECT topic FROM {EVENTS_TABLE} WHERE originator_id = %s ORDER BY originator_version",
        (uuid.UUID(str(key_id)),),
    ).fetchall()
    return [str(topic).rsplit(".", 1)[-1] for (topic,) in rows]


@dataclass
class RichError:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    violations: dict[str, str] = field(default_factory=dict)
    retry_delay: timedelta | None = None


def rich(error: grpc.RpcError) -> RichError:
    """The status code, message and decoded rich-error details of a failed call."""
    found = RichError(error.code(), error.details() or "")  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.reason, found.domain = info.reason, info.domain
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.violations = {v.field: v.description for v in bad.field_violations}
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found.retry_delay = retry.retry_delay.ToTimedelta()
    return found
