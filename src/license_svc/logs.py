"""Log output: `text` for a developer's terminal, `json` (one object a line) for collectors.

`setup(fmt)` replaces the root handler's formatter. A JSON line has `time` (UTC, ISO 8601 with
milliseconds), `level`, `logger`, `message`, and the call fields the API's call log passes as
`extra` (method, grpc_code, duration_ms, role, reseller_id, request_id, …); an exception's
traceback goes in `exc`. Text lines append the call's role and request id after the message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

FORMATS = ("text", "json")
# Anything shaped like an activation key (any case), wherever it comes from — a caller's request
# id, an exception's text — is masked before a line is written: no plaintext code in a log.
CODE_SHAPE = re.compile(r"\b([A-Za-z]{3})-[A-Za-z0-9]{4}-[A-Za-z0-9]{4}-[A-Za-z0-9]{4}\b")


def redact(text: str) -> str:
    return CODE_SHAPE.sub(lambda m: f"{m.group(1)}-••••-••••-••••", text)


# Set on a record whose producer masked what a caller could have written into it (the call log:
# its only caller-given text is the request id); its line is not scanned again.
MASKED = "masked"
TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The keys a call log record carries beyond the standard LogRecord attributes.
CALL_FIELDS = (
    "method",
    "service",
    "grpc_type",
    "grpc_code",
    "reason",
    "duration_ms",
    "role",
    "reseller_id",
    "request_id",
    "messages_sent",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CALL_FIELDS:
            value = record.__dict__.get(name)
            if value not in (None, ""):
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        text = json.dumps(line, default=str)
        return text if record.__dict__.get(MASKED) and not record.exc_info else redact(text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = record.__dict__.get("request_id")
        if request_id:
            role = record.__dict__.get("role") or "-"
            reseller = record.__dict__.get("reseller_id")
            who = f"{role}:{reseller}" if reseller else role
            text = f"{text} role={who} request_id={request_id}"
        return text if record.__dict__.get(MASKED) and not record.exc_info else redact(text)


def setup(fmt: str) -> None:
    """Log INFO and up to stderr in `fmt` ("text" or "json")."""
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    root.setLevel(logging.INFO)
    for handler in root.handlers:
        handler.setFormatter(formatter)
