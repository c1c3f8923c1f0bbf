"""`convert.timestamp` (plain arithmetic on the hot path) agrees with protobuf's FromDatetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from license_svc.entrypoints.api import convert

OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# Inside the range a Timestamp holds (years 1–9999 in UTC), whatever the offset.
MOMENTS = st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=OFFSETS | st.just(UTC))


@given(MOMENTS)
def test_the_same_timestamp_as_the_librarys(moment: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment.astimezone(UTC))
    assert convert.timestamp(moment) == expected
    assert convert.from_timestamp(convert.timestamp(moment)) == moment  # type: ignore[arg-type]


def test_none_is_no_timestamp() -> None:
    assert convert.timestamp(None) is None
