"""No plaintext code reaches a log line, whatever carried it there."""

from __future__ import annotations

import json
import logging

from license_svc.entrypoints.api.calllog import CallLog
from license_svc.entrypoints.api.interceptor import Call
from license_svc.logs import JsonFormatter, TextFormatter, redact


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("license_svc.test", logging.INFO, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_anything_shaped_like_a_code_is_masked_in_either_case():
    assert redact("code INT-ABCD-EFGH-2345 and pos-abcd-efgh-2345.") == (
        "code INT-••••-••••-•••• and pos-••••-••••-••••."
    )
    assert redact("hint INT-••••-••••-7QX4 stays") == "hint INT-••••-••••-7QX4 stays"


def test_json_and_text_lines_mask_a_code_in_a_request_id():
    line = record("GetKey answered OK", request_id="INT-ABCD-EFGH-2345", role="ops")
    assert "ABCD" not in JsonFormatter().format(line)
    assert json.loads(JsonFormatter().format(line))["request_id"] == "INT-••••-••••-••••"
    assert "ABCD" not in TextFormatter().format(line)


def test_the_call_logs_own_line_masks_a_code_shaped_request_id_in_both_formats():
    """The call log masks its one caller-given field itself and marks the record, so its line is
    not scanned again: the mark must not let a code through."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    calls = logging.getLogger("license_svc.calls")
    keep, level = Keep(), calls.level
    calls.addHandler(keep)
    calls.setLevel(logging.INFO)
    try:
        call = Call("/fiscobridge.licensing.v1.KeyService/GetKey", "unary", "INT-ABCD-EFGH-2345")
        call.role = "ops"
        CallLog().handled(call)
    finally:
        calls.removeHandler(keep)
        calls.setLevel(level)
    (line,) = seen
    json_line, text_line = JsonFormatter().format(line), TextFormatter().format(line)
    assert "ABCD" not in json_line and "ABCD" not in text_line
    assert json.loads(json_line)["request_id"] == "INT-••••-••••-••••"
    assert json.loads(json_line)["message"].startswith("GetKey answered OK")
    assert "request_id=INT-••••-••••-••••" in text_line
