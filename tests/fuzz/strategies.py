"""Hypothesis strategies for hostile requests, built from the contract's descriptors.

Every request message of every method gets a strategy from its descriptor: each field drawn or
left unset, strings from a mix of real values (codes, ids, tokens the seeding made), mutations of
them and hostile text (NUL and other controls, bidi overrides, 20,000 characters, ...), integers
at and around every boundary, enums with unknown numbers, timestamps far outside what datetime
holds. Plus raw bodies (random bytes, truncated or corrupted encodings) and hostile metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

from license_svc.access.auth import ACCESS
from license_svc.access.fields import ID_ALPHABET
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.support import TOKENS

Metadata = tuple[tuple[str, str | bytes], ...]
F = FieldDescriptor

HOSTILE_TEXT = [
    "", " ", "\x00", "a\x00b", "fraud\x00oops", "\t", "\r\n", "\x1b[31m", "\x7f", "\x85", "\x9b",
    "\u202e", "\u2028", "\ufeff", "\ufffd", "\U0001f600", "é", "ß", "İ", "ſ", "'; DROP TABLE x; --",
    "%s%s%n", "{0}", "\\", "\\N", "\\.", "../../etc/passwd", "null", "None", "true", "0", "-1",
    "INT-", "INT-AAAA-AAAA-AAAA", "int-2345-6789-abcd", "POS-AAAA-AAAA-AAAA", "INT-••••-••••-7QX4",
    "00000000-0000-0000-0000-000000000000", "{6f1c0b6e-4a8e-4f64-9a39-2b7b0a1e0c11}",
    "2026-02-30", "2026-12-01", "9999-12-31", "0000-01-01", "v1:-5", "djE6LTU=",
    "djE6OTk5OTk5OTk5OTk5OTk5OTk5OQ==",
    "KeyIssued", "KeyActivated", "PlanStarted", "keyissued",
]  # fmt: skip
INT32_EDGES = [0, 1, -1, 2, 5, 59, 60, 61, 99, 100, 500, 501, 1000, 1001, 9_999, 10_000, 10_001,
               2**31 - 1, -(2**31)]  # fmt: skip
INT64_EDGES = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63)]
MUTATIONS: list[Callable[[str], str]] = [
    lambda s: s + "\x00",
    lambda s: "\x00" + s,
    lambda s: f"  {s}\t",
    lambda s: s.lower(),
    lambda s: s[:-1],
    lambda s: s[:-1] + "0",
    lambda s: s + "\u0085",
    lambda s: s * 3,
    lambda s: s.replace("-", "\u2010"),
    lambda s: s[::-1],
]


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, chosen with the given weights. (st.one_of flattens nested one_ofs
    into equally likely branches, so repeating a branch there does not weigh it.)"""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    pick = st.integers(0, len(table) - 1)

    @st.composite
    def choose(draw: st.DrawFn) -> Any:
        return draw(table[draw(pick)])

    return choose()


@dataclass
class Known:
    """Real values from the seeding, so many requests reach past validation into the service."""

    strings: list[str] = field(default_factory=lambda: ["acme", "globex"])
    positions: list[int] = field(default_factory=lambda: [0, 1])

    def text(self) -> st.SearchStrategy[str]:
        real = st.sampled_from(self.strings)
        return weighted(
            (3, real),
            (2, st.tuples(real, st.sampled_from(MUTATIONS)).map(lambda pair: pair[1](pair[0]))),
            (3, st.sampled_from(HOSTILE_TEXT)),
            (1, st.text(alphabet=ID_ALPHABET, max_size=40)),
            (2, st.text(st.characters(exclude_categories=["Cs"]), max_size=40)),
            (
                1,
                st.tuples(st.sampled_from(["A", "\x00", "é", "-"]), st.integers(90, 25_000)).map(
                    lambda pair: pair[0] * pair[1]
                ),
            ),
        )

    def position(self) -> st.SearchStrategy[int]:
        """Mostly positions the store has, or negative; one in 100 out of reach (such a read
        waits out its deadline, so more of them would only slow the run down)."""
        usual = st.one_of(st.sampled_from(self.positions), st.sampled_from([0, -1, -(2**63)]))
        return st.tuples(st.integers(0, 99), usual).map(lambda p: 2**63 - 1 if p[0] == 0 else p[1])


INT32 = st.one_of(
    st.sampled_from(INT32_EDGES), st.integers(-3, 30), st.integers(-(2**31), 2**31 - 1)
)
INT64 = st.one_of(
    st.sampled_from(INT64_EDGES), st.integers(-3, 30), st.integers(-(2**63), 2**63 - 1)
)
NOW_SECONDS = 1_796_126_400  # 2026-12-01
TIMESTAMP_SECONDS = st.one_of(
    st.integers(NOW_SECONDS - 10**8, NOW_SECONDS + 10**8),
    st.sampled_from([0, -62135596800, -62135596801, 253402300799, 253402300800]),
    st.integers(-(2**63), 2**63 - 1),
)
TIMESTAMP_NANOS = st.one_of(
    st.just(0), st.integers(0, 999_999_999), st.integers(-(2**31), 2**31 - 1)
)


def message(descriptor: Descriptor, known: Known, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(cls, seconds=TIMESTAMP_SECONDS, nanos=TIMESTAMP_NANOS)
    if depth > 2:
        return st.builds(cls)
    optional = {f.name: _field(f, known, depth) for f in descriptor.fields}
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: cls(**values))


def _field(f: FieldDescriptor, known: Known, depth: int) -> st.SearchStrategy[Any]:
    one = _scalar(f, known, depth)
    if f.is_repeated:
        return st.lists(one, max_size=5)
    return one


def _scalar(f: FieldDescriptor, known: Known, depth: int) -> st.SearchStrategy[Any]:
    if f.type == F.TYPE_STRING:
        return known.text()
    if f.type == F.TYPE_BOOL:
        return st.booleans()
    if f.type == F.TYPE_ENUM:
        assert f.enum_type is not None
        values = [v.number for v in f.enum_type.values]
        return weighted((3, st.sampled_from(values)), (1, INT32))
    if f.type in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return known.position() if f.name.endswith("position") else INT64
    if f.type in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return INT32
    if f.type == F.TYPE_MESSAGE:
        assert f.message_type is not None
        return message(f.message_type, known, depth + 1)
    if f.type == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if f.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(allow_nan=True)
    return st.integers(0, 2**32 - 1)


# Plausible values by field name: requests built from them reach past validation into the
# service (issuing, the dialog, the limiter, reads at real positions), one field at a time twisted.
SMALL_INTS = {"seats": (1, 10), "count": (1, 5), "period_months": (1, 60), "page_size": (0, 20),
              "connections_in_use": (0, 5), "limit": (0, 10)}  # fmt: skip
IDS = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=20)
TWIST = st.integers(0, 3)


def plausible(descriptor: Descriptor, known: Known) -> st.SearchStrategy[Message]:
    cls = GetMessageClass(descriptor)
    good = {f.name: _good(f, known) for f in descriptor.fields}
    hostile = {f.name: _field(f, known, 1) for f in descriptor.fields}
    names = st.sampled_from(sorted(good)) if good else None

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        values = {name: draw(strategy) for name, strategy in good.items()}
        twist = draw(TWIST)
        if names is not None and twist >= 2:  # half of them: one field missing or hostile
            name = draw(names)
            if twist == 2:
                values.pop(name)
            else:
                values[name] = draw(hostile[name])
        return cls(**values)

    return build()


def _good(f: FieldDescriptor, known: Known) -> st.SearchStrategy[Any]:
    name = f.name
    if f.type == F.TYPE_STRING:
        if name in ("code", "key_id", "batch_id", "page_token", "subscription_id"):
            prefix = {"code": "INT-", "batch_id": "", "page_token": ""}.get(name, "")
            real = [v for v in known.strings if v.startswith(prefix)] or known.strings
            one: st.SearchStrategy[Any] = st.one_of(st.sampled_from(real), IDS)
        elif name == "reseller_id":
            one = st.sampled_from(["acme", "globex", ""])
        elif name in ("from_date", "to_date"):
            one = st.sampled_from(["", "2026-11-01", "2026-12-01", "2026-12-31"])
        elif name == "event_types":
            one = st.sampled_from(["KeyIssued", "KeyActivated", "KeyRevoked", "PlanStarted"])
        elif name == "reason":
            one = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=30)
        else:
            one = st.one_of(st.sampled_from(known.strings), IDS)
    elif f.type == F.TYPE_ENUM:
        assert f.enum_type is not None
        numbers = [v.number for v in f.enum_type.values]
        # Mostly the first real value (PRODUCT_INTEGRATIONS, TIER_STARTER, ...): the others are
        # often refused for reasons of their own (no catalog for Cloud POS, say).
        one = weighted(
            (3, st.just(numbers[1] if len(numbers) > 1 else 0)), (2, st.sampled_from(numbers))
        )
    elif f.type == F.TYPE_INT64 and name.endswith("position"):
        one = st.sampled_from(known.positions)
    elif f.type in (F.TYPE_INT32, F.TYPE_INT64):
        lo, hi = SMALL_INTS.get(name, (0, 10))
        one = st.integers(lo, hi)
    elif f.type == F.TYPE_MESSAGE and f.message_type is not None:
        if f.message_type.full_name == "google.protobuf.Timestamp":
            cls = GetMessageClass(f.message_type)
            one = st.builds(cls, seconds=st.integers(NOW_SECONDS - 10**7, NOW_SECONDS + 10**7))
        else:
            one = plausible(f.message_type, known)
    else:
        one = _scalar(f, known, 1)
    return st.lists(one, max_size=3) if f.is_repeated else one


def raw_body(descriptor: Descriptor, known: Known) -> st.SearchStrategy[bytes]:
    """Bodies that are not (or not quite) an encoding of the request message."""
    encoded = message(descriptor, known).map(lambda m: m.SerializeToString())
    return st.one_of(
        st.binary(max_size=200),
        st.tuples(encoded, st.binary(min_size=1, max_size=8)).map(lambda p: p[0] + p[1]),
        st.tuples(encoded, st.integers(0, 50)).map(lambda p: p[0][: p[1]]),
        st.tuples(encoded, st.integers(0, 200), st.integers(0, 255)).map(_flip),
        st.sampled_from([b"\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x02\xff\xfe", b"\x00"]),
    )


def _flip(parts: tuple[bytes, int, int]) -> bytes:
    body, index, value = parts
    if not body:
        return bytes([value])
    i = index % len(body)
    return body[:i] + bytes([value]) + body[i + 1 :]


def metadata(method: str) -> st.SearchStrategy[Metadata]:
    """Mostly a token the method accepts (so calls get past auth), else anything hostile."""
    roles = {r.value for r in ACCESS.get(method, frozenset())}
    allowed = [t for name, t in TOKENS.items() if name in roles or _role(name) in roles]
    any_token = list(TOKENS.values())
    good = st.sampled_from(allowed or any_token).map(lambda t: (("authorization", f"Bearer {t}"),))
    hostile_values = st.one_of(
        st.sampled_from(
            [
                "Bearer",
                "Bearer ",
                "Basic ZGV2LW9wcw==",
                "bearer dev-ops",
                "Bearer  dev-ops  ",
                "Bearer unknown",
                "Bearer " + "x" * 6000,
                "Bearer dev-ops dev-ops",
                "dev-ops",
            ]
        ),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
        st.sampled_from(any_token).map(lambda t: f"Bearer {t}"),
    )
    hostile = st.one_of(
        st.just(()),
        hostile_values.map(lambda v: (("authorization", v),)),
        st.tuples(good, st.binary(max_size=64)).map(lambda p: (*p[0], ("x-fuzz-bin", p[1]))),
        st.tuples(good, hostile_values).map(lambda p: (*p[0], ("authorization", p[1]))),
        st.tuples(hostile_values, good).map(lambda p: (("authorization", p[0]), *p[1])),
        good.map(lambda g: (*g, *((f"x-h{i}", "v" * 50) for i in range(40)))),
        good.map(lambda g: (*g, ("grpc-accept-encoding", "gzip, nonsense"), ("te", "trailers"))),
    )
    return weighted((4, good), (1, hostile))


def _role(token_name: str) -> str:
    return "reseller" if token_name in ("acme", "globex") else token_name


def methods() -> list[MethodDescriptor]:
    return [m for s in pb.DESCRIPTOR.services_by_name.values() for m in s.methods]
