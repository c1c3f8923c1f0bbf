"""No plaintext code reaches a log line, whatever carried it there."""

from __future__ import annotations

import json
import logging

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
