"""The one log line per call (rules §10), and the observer that hands a call to several others.

The line names the method, the gRPC code (and the error table's reason), the duration, the
caller's role and reseller id and the request id — never a request field, so never a code. The
fields travel as the record's `extra`; `license_svc.logs` prints them as JSON keys or as text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from license_svc.logs import MASKED, redact

from .interceptor import Call, Observer

log = logging.getLogger("license_svc.calls")
SERVER_FAULTS = {"INTERNAL", "UNKNOWN", "DATA_LOSS"}
MESSAGE = "%s answered %s%s in %.1f ms"


class CallLog:
    def started(self, call: Call) -> None:
        pass

    def sent(self, call: Call) -> None:
        pass

    def handled(self, call: Call) -> None:
        # One line per call is on the hot path: the record is made directly (no look-up of the
        # calling frame, which the line does not show), and only the caller's request id is
        # masked (the rest comes from the method table, the error table and the token table).
        level = logging.ERROR if call.code in SERVER_FAULTS else logging.INFO
        if not log.isEnabledFor(level):
            return
        ms = call.seconds * 1000
        service, _, method = call.method.lstrip("/").partition("/")
        reason = f" ({call.reason})" if call.reason else ""
        record = logging.LogRecord(
            log.name, level, __file__, 0, MESSAGE, (method, call.code, reason, ms), None
        )
        fields = record.__dict__
        fields["method"] = method
        fields["service"] = service
        fields["grpc_type"] = call.grpc_type
        fields["grpc_code"] = call.code
        fields["reason"] = call.reason
        fields["duration_ms"] = round(ms, 3)
        fields["role"] = call.role
        fields["reseller_id"] = call.reseller_id
        fields["request_id"] = redact(call.request_id)
        fields["messages_sent"] = call.sent
        fields[MASKED] = True
        log.handle(record)


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
