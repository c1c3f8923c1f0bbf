"""The request validation layer: what each kind of field accepts and how it says no."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest
from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from license_svc.access.fields import ID_ALPHABET, LIMITS, BadRequest, Fields
from license_svc.entrypoints.api.gen import licensing_pb2 as pb

CONTROLS = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]


def violations(check: str, *args: Any, **kwargs: Any) -> dict[str, str]:
    """The violations of one `Fields` check, e.g. violations("identifier", "a b", "account_id")."""
    fields = Fields()
    getattr(fields, check)(*args, **kwargs)
    return dict(fields.violations)


@given(st.text(alphabet=ID_ALPHABET, min_size=1, max_size=128))
def test_every_id_of_the_alphabet_within_its_limit_is_accepted(value: str) -> None:
    fields = Fields()
    assert fields.identifier(f"  {value} ", "account_id") == value
    fields.done()


@pytest.mark.parametrize("char", [*CONTROLS, " ", "é", "ß", "\u200b", "\ufffd", "#", "%", "*"])
def test_an_id_with_any_other_character_is_refused(char: str) -> None:
    assert violations("identifier", f"a{char}b", "account_id") == {
        "account_id": "must contain only letters, digits and - _ . : @ + = /"
    }


def test_ids_are_limited_per_field_and_required_unless_optional() -> None:
    for field, (_, limit) in LIMITS.items():
        assert violations("identifier", "x" * limit, field) == {}
        too_long = violations("identifier", "x" * (limit + 1), field)
        assert too_long == {field: f"must be at most {limit} characters"}
    assert violations("identifier", " ", "account_id") == {"account_id": "is required"}
    assert violations("identifier", "", "batch_id", required=False) == {}


@pytest.mark.parametrize("char", CONTROLS)
def test_free_text_refuses_every_control_character(char: str) -> None:
    found = violations("text", f"fraud{char}oops", "reason")
    assert list(found) == ["reason"]
    assert f"U+{ord(char):04X}" in found["reason"]


@given(st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=500))
def test_free_text_accepts_any_other_unicode(value: str) -> None:
    fields = Fields()
    assert fields.text(value, "reason") == value.strip()
    fields.done()


def test_free_text_longer_than_its_limit_is_refused_without_scanning_it_all() -> None:
    assert violations("text", "r" * 501, "reason") == {"reason": "must be at most 500 characters"}
    assert violations("text", "\x00" * 10**6, "reason") == {
        "reason": "must be at most 500 characters"
    }


def test_all_violations_of_a_request_are_raised_together() -> None:
    fields = Fields()
    fields.identifier("", "account_id")
    fields.text("\x00", "reason")
    with pytest.raises(BadRequest) as raised:
        fields.done()
    assert [f for f, _ in raised.value.violations] == ["account_id", "reason"]


def test_key_ids_dates_and_timestamps() -> None:
    key = "6f1c0b6e-4a8e-4f64-9a39-2b7b0a1e0c11"
    fields = Fields()
    assert fields.key_id(key) == UUID(key)
    assert fields.day("2026-02-28", "from_date") == date(2026, 2, 28)
    assert fields.day("", "to_date") is None
    fields.done()
    for bad in ["nope", "x" * 5000, key + "\x00", ""]:
        assert violations("key_id", bad) != {}
    for bad_day in ["2026-02-30", "2026-2-3", "20260203", "2026-02-03T00:00", "٢٠٢٦-٠٢-٠٣"]:
        assert violations("day", bad_day, "from_date") == {"from_date": "must be a date YYYY-MM-DD"}


def test_a_timestamp_datetime_cannot_hold_is_refused() -> None:
    fields = Fields()
    assert fields.timestamp(pb.GetSubscriptionSummaryRequest(), "as_of") is None
    fields.done()
    for seconds, nanos in [(2**62, 0), (-(2**62), 0), (0, -1), (0, 10**9)]:
        request = pb.GetSubscriptionSummaryRequest(
            as_of=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
        )
        assert violations("timestamp", request, "as_of") == {
            "as_of": "must be a timestamp between years 1 and 9999"
        }
    ok = pb.GetSubscriptionSummaryRequest(as_of=timestamp_pb2.Timestamp(seconds=253402300799))
    assert violations("timestamp", ok, "as_of") == {}


def test_a_stats_range_at_the_calendars_ends_is_still_a_range():
    from datetime import date

    from license_svc.reads.ops import default_days

    today = date(2026, 12, 1)
    assert default_days(today, first=date(9999, 12, 30)).last == date.max
    assert default_days(today, last=date(1, 1, 2)).first == date.min
    assert list(default_days(today, first=date(9999, 12, 30)))[-1] == date.max
