"""`StoreMapper` (the quicker decoding a replay uses) gives exactly what the library's own
mapper gives, for every event the domain records with any text, and falls back to it — its
value or its error — for whatever it does not expect."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    UUIDAsHex,
)
from hypothesis import given
from hypothesis import strategies as st

from license_svc.adapters.mapper import StoreMapper
from license_svc.domain.key import ActivationKey
from license_svc.domain.tiers import Product, Tier


def transcoder() -> JSONTranscoder:
    found = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        found.register(transcoding)
    return found


LIBRARY = Mapper[uuid.UUID](transcoder())
QUICK = StoreMapper(transcoder())
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
# Any text a field can hold: NUL, control characters, lone surrogates, other planes.
TEXT = st.text(st.characters(codec=None), max_size=40)


def same(stored: StoredEvent) -> Any:
    expected = LIBRARY.to_domain_event(stored)
    found = QUICK.to_domain_event(stored)
    assert type(found) is type(expected)
    assert found.__dict__ == expected.__dict__
    return found


@given(reseller=TEXT, hint=TEXT, account=TEXT, reason=TEXT)
def test_every_event_of_a_key_decodes_as_the_library_decodes_it(
    reseller: str, hint: str, account: str, reason: str
) -> None:
    key = ActivationKey.issue(
        uuid.uuid4(),
        product=Product.INTEGRATIONS,
        tier=Tier.GROWTH,
        seats=3,
        period_months=12,
        reseller_id=reseller,
        batch_id=str(uuid.uuid4()),
        hint=hint,
    )
    key.activate(account, NOW)
    key.revoke(reason=reason, revoked_by=reseller, by_ops=True, now=NOW)
    for event in key.collect_events():
        try:
            stored = LIBRARY.to_stored_event(event)
        except UnicodeEncodeError:  # a lone surrogate: no mapper can store it
            continue
        same(stored)


class Upcast(Aggregate):
    @dataclass(frozen=True)
    class Created(Aggregate.Created):
        size: int

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["size"] = 0


class Plain(Aggregate):
    class Created(Aggregate.Created):
        pass


TOPIC = "tests.unit.test_store_mapper:Upcast.Created"
PLAIN = "tests.unit.test_store_mapper:Plain.Created"  # class version 1: fields decoded alone
STATE = '{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-06T12:00:00+00:00"},'
STATE += '"originator_topic":"tests.unit.test_store_mapper:Upcast"'


def stored(state: str | bytes, topic: str = TOPIC) -> StoredEvent:
    data = state.encode() if isinstance(state, str) else state
    return StoredEvent(uuid.uuid4(), 1, topic, data)


def test_an_old_class_version_is_upcast_and_a_string_id_converted() -> None:
    assert same(stored(STATE + "}")).size == 0
    assert same(stored(STATE + ',"size":7,"class_version":2}')).size == 7
    by_name = StoredEvent(str(uuid.uuid4()), 1, TOPIC, (STATE + "}").encode())
    assert isinstance(same(by_name).originator_id, uuid.UUID)


def test_what_it_does_not_expect_goes_to_the_library() -> None:
    assert same(stored(" \n" + STATE + "}\n ")).size == 0  # whitespace around the object
    for bad in (b"[1, 2]", b"{", b"\xff\xfe", STATE.replace("datetime_iso", "nope") + "}"):
        event = stored(bad)
        with pytest.raises(Exception) as expected:  # whichever the library raises
            LIBRARY.to_domain_event(event)
        with pytest.raises(type(expected.value)) as found:
            QUICK.to_domain_event(event)
        assert str(found.value) == str(expected.value)
    with pytest.raises(MapperDeserialisationError):
        QUICK.to_domain_event(stored(b"{"))


# -- any document: orjson where it reads as the scanner does, the scanner where it might not --

TRANSCODED = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(
        lambda d: {"_type_": "datetime_iso", "_data_": d.isoformat()}
    ),
    st.uuids().map(lambda u: {"_type_": "uuid_hex", "_data_": u.hex}),
    st.just({"_type_": "decimal_str", "_data_": "1.50"}),
    st.just({"_type_": "not-registered", "_data_": "x"}),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**80) | st.integers(max_value=-(2**63) + 2),
    st.floats(allow_nan=False),  # a float (or a number orjson reads as one): the scanner's
    TEXT,
    TRANSCODED,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(document=st.dictionaries(TEXT, VALUES, max_size=6), ascii_only=st.booleans())
def test_any_document_decodes_as_the_library_decodes_it(
    document: dict[str, Any], ascii_only: bool
) -> None:
    try:
        data = json.dumps(document, ensure_ascii=ascii_only).encode()
    except UnicodeEncodeError:  # a lone surrogate written raw: not UTF-8, no store holds it
        return
    event = stored(data)
    try:
        expected = LIBRARY.to_domain_event(event)
    except Exception as error:
        with pytest.raises(type(error)) as found:
            QUICK.to_domain_event(event)
        assert str(found.value) == str(error)
        return
    decoded = QUICK.to_domain_event(event)
    assert type(decoded) is type(expected)
    # repr, not ==: an integer read as a float would still compare equal.
    assert repr(decoded.__dict__) == repr(expected.__dict__)


def test_a_big_integer_and_a_nested_transcoding_decode_as_the_library_decodes_them() -> None:
    document = {
        "big": 2**70,
        "nested": [{"at": {"_type_": "datetime_iso", "_data_": NOW.isoformat()}}],
        "whole": {"_type_": "uuid_hex", "_data_": uuid.UUID(int=7).hex},
    }
    decoded = same(stored(json.dumps(document)))
    assert decoded.big == 2**70 and type(decoded.big) is int
    assert decoded.nested[0]["at"] == NOW and decoded.whole == uuid.UUID(int=7)


# -- decode_fields: a fold's events, only the fields it reads --


@given(
    document=st.dictionaries(TEXT, VALUES, max_size=6),
    extra=st.lists(TEXT, max_size=2),
    pick=st.data(),
)
def test_the_fields_a_fold_reads_decode_as_the_library_decodes_them(
    document: dict[str, Any], extra: list[str], pick: st.DataObject
) -> None:
    """Each field asked for (one the document may lack among them) is what the library's
    event holds; nothing else is kept; where the library cannot decode the document, the
    fields either decode alike or the library's own error is raised."""
    try:
        data = json.dumps(document, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return
    fields = tuple(pick.draw(st.lists(st.sampled_from([*document, *extra]), unique=True))
                   if document or extra else ())  # fmt: skip
    event = stored(data, PLAIN)
    try:
        expected = LIBRARY.to_domain_event(event)
    except Exception as error:
        try:
            QUICK.decode_fields(*values(event), fields)
        except Exception as raised:
            assert type(raised) is type(error) and str(raised) == str(error)
        return
    found = QUICK.decode_fields(*values(event), fields)
    assert type(found) is type(expected)
    assert set(found.__dict__) <= set(expected.__dict__)
    for name in ("originator_id", "originator_version", *fields):
        assert repr(getattr(found, name, None)) == repr(getattr(expected, name, None))


def values(event: StoredEvent) -> tuple[uuid.UUID | str, int, str, bytes]:
    return event.originator_id, event.originator_version, event.topic, event.state


def test_a_class_that_upcasts_is_decoded_whole() -> None:
    event = stored(STATE + "}")
    found: Any = QUICK.decode_fields(*values(event), ())
    assert found.size == 0 and found.timestamp == NOW


def test_fields_with_a_big_integer_a_float_or_a_nested_transcoding_decode_as_the_library_does() -> (
    None
):
    document: dict[str, Any] = {
        "big": 2**70,
        "float": 1.5,
        "nested": [{"at": {"_type_": "datetime_iso", "_data_": NOW.isoformat()}}],
        "whole": {"_type_": "uuid_hex", "_data_": uuid.UUID(int=7).hex},
    }
    event = stored(json.dumps(document), PLAIN)
    expected = LIBRARY.to_domain_event(event)
    for field in document:
        found = QUICK.decode_fields(*values(event), (field,))
        assert repr(getattr(found, field)) == repr(getattr(expected, field))
    # A field it does not read is not looked at: not even a transcoding no one registered.
    document["unread"] = {"_type_": "not-registered", "_data_": "x"}
    kept: Any = QUICK.decode_fields(*values(stored(json.dumps(document), PLAIN)), ("whole",))
    assert kept.whole == uuid.UUID(int=7) and not hasattr(kept, "unread")
