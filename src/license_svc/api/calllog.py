"""The one log line per call (rules §10), and the observer that hands a call to several others.

The line names the method, the gRPC code (and the error table's reason), the duration, the
caller's role and reseller id and the request id — never a request field, so never a code. The
fields travel as the record's `extra`; `license_svc.logs` prints them as JSON keys or as text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .interceptor import Call, Observer

log = logging.getLogger("license_svc.calls")
SERVER_FAULTS = {"INTERNAL", "UNKNOWN", "DATA_LOSS"}


class CallLog:
    def started(self, call: Call) -> None:
        pass

    def sent(self, call: Call) -> None:
        pass

    def handled(self, call: Call) -> None:
        ms = call.seconds * 1000
        service, _, method = call.method.lstrip("/").partition("/")
        reason = f" ({call.reason})" if call.reason else ""
        log.log(
            logging.ERROR if call.code in SERVER_FAULTS else logging.INFO,
            "%s answered %s%s in %.1f ms",
            method,
            call.code,
            reason,
            ms,
            extra={
                "method": method,
                "service": service,
                "grpc_type": call.grpc_type,
                "grpc_code": call.code,
                "reason": call.reason,
                "duration_ms": round(ms, 3),
                "role": call.role,
                "reseller_id": call.reseller_id,
                "request_id": call.request_id,
                "messages_sent": call.sent,
            },
        )


class Fanout:
    """Several observers as one (metrics, then the log line)."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self._observers = tuple(observers)

    def started(self, call: Call) -> None:
        for observer in self._observers:
            observer.started(call)

    def sent(self, call: Call) -> None:
        for observer in self._observers:
            observer.sent(call)

    def handled(self, call: Call) -> None:
        for observer in self._observers:
            observer.handled(call)
