"""Keyed hashes of codes: stored ids and replayed batches depend on them never changing."""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from license_svc.domain.codes import ALPHABET, PREFIXES, Derivation, derive, parse
from license_svc.domain.identity import KeyIdentity

PEPPER = b"unit-test pepper, 32 bytes long!"


def reference_derive(secret: bytes, scope: bytes, index: int, prefix: str) -> str:
    """The derivation written out plainly (rules §2 and `derive`'s docstring), as an oracle for
    the table-driven implementation."""
    stem = scope + b"\x00" + index.to_bytes(8, "big") + b"\x00"
    attempt = 0
    while True:
        digest = hmac.new(secret, stem + attempt.to_bytes(4, "big"), hashlib.sha256).digest()
        symbols = [ALPHABET[b % 34] for b in digest if b < 238]
        attempt += 1
        if len(symbols) < 11:
            continue
        total = sum((i + 1) * ALPHABET.index(s) for i, s in enumerate(symbols[:11]))
        check = (-total * pow(12, -1, 37)) % 37
        if check < 34:
            body = "".join(symbols[:11]) + ALPHABET[check]
            return f"{prefix}-{body[0:4]}-{body[4:8]}-{body[8:12]}"


def test_key_ids_and_batch_ids_are_pinned_so_stored_keys_stay_findable() -> None:
    identity = KeyIdentity(PEPPER)
    code = identity.mint("acme", "req-1", 41, "INT")
    assert code.text() == "INT-TXAX-QMXK-CS4X"
    assert identity.key_id(code) == UUID("2e0d60bf-1923-2063-fe24-e73aa8171208")
    assert identity.key_id(parse("int-txax-qmxk-cs4x")) == identity.key_id(code)
    assert identity.batch_id("acme", "req-1") == UUID("6bcee9d7-1bb3-4e48-bc66-4a6fc0a919ca")
    pos = identity.mint("acme", "req-1", 0, "POS")
    assert pos.text() == "POS-HXZU-NOIR-XQYZ"
    assert identity.key_id(pos) == UUID("007451f8-b369-6262-d506-96ab306d8300")


def test_a_minted_batch_is_the_codes_minted_one_index_at_a_time() -> None:
    identity = KeyIdentity(PEPPER)
    batch = list(identity.mint_batch("acme", "req-2", 300, "INT"))
    assert batch == [identity.mint("acme", "req-2", i, "INT") for i in range(300)]


@settings(max_examples=200, deadline=None)
@given(
    secret=st.binary(max_size=80),
    scope=st.binary(max_size=40),
    index=st.integers(0, 2**64 - 1),
    prefix=st.sampled_from(sorted(PREFIXES)),
)
def test_derivation_matches_the_plainly_written_algorithm(
    secret: bytes, scope: bytes, index: int, prefix: str
) -> None:
    expected = reference_derive(secret, scope, index, prefix)
    assert derive(secret, scope, index, prefix).text() == expected
    assert Derivation(secret, scope, prefix).code(index).text() == expected
