"""The library's mapper with a quicker way from a stored event to a domain event.

A replay (a rebuild, a worker's catch-up) turns every stored event into a domain event, and
the library's `Mapper.to_domain_event` spent 5 µs an event of a replay's ~11: it resolves the
topic and the id's type on every call and decodes through `JSONDecoder.decode`, which strips
whitespace around the document with two regular expressions. This one remembers, per topic,
the class, its id conversion and its class version, and calls the JSON scanner (the same C
scanner, the same object hook, so the same transcodings) on the text directly.

Where the transcoder is the library's own JSON one, the document is parsed by `orjson` (a
third of the scanner's time), and its objects then transcoded innermost first as the library's
object hook does (`{"_type_": name, "_data_": data}` → the named transcoding's value). orjson
and the scanner read every document orjson accepts alike, but for numbers: orjson reads an
integer past 64 bits as a float. So a document with a float in it goes to the scanner (no
event of this service holds one), as does any document orjson refuses or whose transcoding is
not registered.

Anything it does not expect — a cipher or a compressor, a transcoder that is not the library's
JSON one, a document with whitespace around it or that is not an object, text that does not
decode — goes to the library's own method, which decodes it or raises its own error.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent, find_id_convertor
from eventsourcing.utils import resolve_topic


class StoreMapper(Mapper[UUID]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        transcoder = self.transcoder
        plain = isinstance(transcoder, JSONTranscoder) and not (self.cipher or self.compressor)
        self._scan = transcoder.decoder.scan_once if plain else None  # type: ignore[attr-defined]
        # orjson and the transcodings by name, where the decoder is the library's own.
        self._names: dict[str, Any] | None = None
        if isinstance(transcoder, JSONTranscoder) and plain and _library_decoder(transcoder):
            self._names = transcoder.names
        # By (topic, type of the stored id): the class, its id conversion, its class version.
        self._classes: dict[tuple[str, type], tuple[type, Any, int]] = {}

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        return self.decode(
            stored_event.originator_id,
            stored_event.originator_version,
            stored_event.topic,
            stored_event.state,
        )

    def decode(
        self, originator_id: UUID | str, originator_version: int, topic: str, data: bytes
    ) -> DomainEventProtocol[UUID]:
        """`to_domain_event` of a stored event given as its four values (a fold's rows)."""
        scan = self._scan
        if scan is None:
            return self._library(originator_id, originator_version, topic, data)
        cls, convert, class_version = self._known(topic, type(originator_id))
        state = _parsed(data, self._names)
        if state is None:
            try:
                text = data.decode("utf8")
                state, end = scan(text, 0)
            except Exception:  # the library's method raises its own error for it
                return self._library(originator_id, originator_version, topic, data)
            if end != len(text) or type(state) is not dict:
                return self._library(originator_id, originator_version, topic, data)
        state["originator_id"] = convert(originator_id)
        state["originator_version"] = originator_version
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        domain_event: Any = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event  # type: ignore[no-any-return]

    def decode_fields(
        self,
        originator_id: UUID | str,
        originator_version: int,
        topic: str,
        data: bytes,
        fields: tuple[str, ...],
    ) -> DomainEventProtocol[UUID]:
        """`decode`, keeping only the named fields of the event's state (with its id and
        version): the event a rebuild's fold reads a few attributes of, without transcoding the
        rest (a KeyActivated's four datetimes, of which a view reads two). Each kept field is
        transcoded as `decode` transcodes it; the rest of the document is parsed, not looked
        at. Anything `decode` would read otherwise — a transcoder or mapper not the library's
        plain JSON, a class that upcasts, a field missing, a float, a transcoding not
        registered, a document orjson refuses — is decoded whole by `decode`."""
        names = self._names
        if names is None or data[:1] != b"{" or data[-1:] != b"}":
            return self.decode(originator_id, originator_version, topic, data)
        cls, convert, class_version = self._known(topic, type(originator_id))
        if class_version != 1:
            return self.decode(originator_id, originator_version, topic, data)
        try:
            state = orjson.loads(data)
            kept = {
                "originator_id": convert(originator_id),
                "originator_version": originator_version,
            }
            for name in fields:
                value = state[name]
                kind = type(value)
                if kind is dict:
                    value = _transcoded(value, names)
                elif kind is list:
                    _revived_list(value, names)
                elif kind is float:
                    raise _HasFloat
                kept[name] = value
        except Exception:
            return self.decode(originator_id, originator_version, topic, data)
        domain_event: Any = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", kept)
        return domain_event  # type: ignore[no-any-return]

    def _known(self, topic: str, id_type: type) -> tuple[type, Any, int]:
        """The topic's class, its id conversion for ids of `id_type`, its class version."""
        known = self._classes.get((topic, id_type))
        if known is None:
            cls = resolve_topic(topic)
            convert = find_id_convertor(cls, cast(Hashable, id_type))
            known = self._classes[(topic, id_type)] = (
                cls,
                convert,
                getattr(cls, "class_version", 1),
            )
        return known

    def _library(
        self, originator_id: UUID | str, originator_version: int, topic: str, data: bytes
    ) -> DomainEventProtocol[UUID]:
        stored = StoredEvent(originator_id, originator_version, topic, data)
        return super().to_domain_event(stored)


def _library_decoder(transcoder: JSONTranscoder) -> bool:
    """Whether the transcoder decodes as the library's JSONTranscoder: its object hook the
    library's, numbers and strictness the json module's defaults."""
    decoder = transcoder.decoder
    return (
        type(transcoder)._decode_obj is JSONTranscoder._decode_obj
        and getattr(decoder.object_hook, "__func__", None) is JSONTranscoder._decode_obj
        and decoder.object_pairs_hook is None
        and decoder.parse_float is float
        and decoder.parse_int is int
        and decoder.strict
    )


def _parsed(data: bytes, names: dict[str, Any] | None) -> dict[str, Any] | None:
    """The document's object by orjson, transcoded; None: the scanner must read it."""
    if names is None or data[:1] != b"{" or data[-1:] != b"}":
        return None
    try:
        state = _revived(orjson.loads(data), names)
    except Exception:  # a float, a transcoding not registered, a document orjson refuses
        return None
    if len(state) == 2 and "_type_" in state and "_data_" in state:
        return None  # the whole document is one transcoded value, not an object
    return state


class _HasFloat(Exception):
    """A number orjson may have read otherwise than the scanner (an integer past 64 bits)."""


def _revived(value: dict[str, Any], names: dict[str, Any]) -> dict[str, Any]:
    """Every object in `value` transcoded as the library's object hook does, innermost first."""
    for key, item in value.items():
        kind = type(item)
        if kind is dict:
            value[key] = _transcoded(item, names)
        elif kind is list:
            _revived_list(item, names)
        elif kind is float:
            raise _HasFloat
    return value


def _revived_list(items: list[Any], names: dict[str, Any]) -> None:
    for index, item in enumerate(items):
        kind = type(item)
        if kind is dict:
            items[index] = _transcoded(item, names)
        elif kind is list:
            _revived_list(item, names)
        elif kind is float:
            raise _HasFloat


def _transcoded(value: dict[str, Any], names: dict[str, Any]) -> Any:
    """An inner object as `JSONTranscoder._decode_obj` leaves it (a KeyError for a name not
    registered, where the library raises its own error: the scanner then reads it)."""
    _revived(value, names)
    if len(value) == 2 and "_type_" in value and "_data_" in value:
        return names[value["_type_"]].decode(value["_data_"])
    return value
