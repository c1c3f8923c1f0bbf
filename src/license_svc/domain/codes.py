"""Activation key codes (rules §2): parsing, check symbol, generation, derivation, hints.

A code is ``PPP-XXXX-XXXX-XXXX``: a product prefix and twelve symbols from a 34-symbol alphabet
without the easily confused ``0`` and ``1``. The twelfth symbol is a check symbol over the eleven
before it (the prefix is not covered: a wrong prefix is a different, well-formed answer).

Check: with symbol values v_i (0..33) and weights w_i = i for positions i = 1..12, a body is valid
iff ``sum(w_i * v_i) % 37 == 0``. Because 37 is prime:

* a single substitution changes the sum by ``d * w_i`` with ``0 < |d| < 37`` and ``w_i`` non-zero
  mod 37, so the product is non-zero mod 37 and the error is always detected;
* an adjacent swap of ``a`` and ``b`` changes it by ``(a - b) * (w_i - w_{i+1}) = ±(a - b)``,
  non-zero whenever ``a != b``, so it is detected too, the check symbol included.

Luhn mod 34 does not have the second property (it misses swapping the alphabet's first and last
symbols). The price of a modulus larger than the alphabet is that 3 of 37 data draws need a check
value (34..36) that has no symbol; generators simply draw again.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ALPHABET",
    "PREFIXES",
    "Derivation",
    "InvalidKeyFormat",
    "ParsedCode",
    "check_symbol",
    "derive",
    "generate",
    "hint",
    "is_valid_body",
    "parse",
]

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ23456789"
PREFIXES: dict[str, str] = {"INT": "integrations", "POS": "cloud_pos"}

_MODULUS = 37
_BODY_LEN = 12
_DATA_LEN = _BODY_LEN - 1
_VALUES = {symbol: value for value, symbol in enumerate(ALPHABET)}
# Solving w_12 * v_12 == -s (mod 37) needs the inverse of the check position's weight.
_CHECK_WEIGHT_INVERSE = pow(_BODY_LEN, -1, _MODULUS)
# The largest multiple of 34 that fits in a byte: bytes at or above it would bias b % 34.
_BYTE_LIMIT = (256 // len(ALPHABET)) * len(ALPHABET)
_MESSAGE = "Invalid key format"
# Byte tables, so the per-symbol work of checking and deriving runs in C (bytes.translate):
# a symbol's value (or _NOT_A_SYMBOL), and the symbol a derived byte stands for.
_NOT_A_SYMBOL = 255
_VALUE_OF = bytes(_VALUES.get(chr(b), _NOT_A_SYMBOL) for b in range(256))
_WEIGHTS = range(1, _BODY_LEN + 1)
_SYMBOL_OF = bytes(ord(ALPHABET[b % len(ALPHABET)]) if b < _BYTE_LIMIT else 0 for b in range(256))
_BIASED = bytes(range(_BYTE_LIMIT, 256))

# Built from ALPHABET so the regex and the check-symbol values can never disagree on the symbols.
_SYMBOL = "[" + re.escape(ALPHABET) + "]"
_GROUP = _SYMBOL + "{4}"
_PREFIX = "|".join(map(re.escape, PREFIXES))
_CODE_RE = re.compile(f"({_PREFIX})-({_GROUP})-({_GROUP})-({_GROUP})")


class InvalidKeyFormat(ValueError):
    """The text is not a well-formed key with a correct check symbol."""

    reason = "INVALID_KEY_FORMAT"  # in the API's error details and the failed-attempt audit

    def __init__(self) -> None:
        # One fixed message: the API returns it verbatim and it must not echo the attempted code.
        super().__init__(_MESSAGE)


@dataclass(frozen=True, repr=False)
class ParsedCode:
    prefix: str
    product: str
    body: str

    def __post_init__(self) -> None:
        # Construction is the only way to get a ParsedCode, so an instance is always a valid code.
        if PREFIXES.get(self.prefix) != self.product or not is_valid_body(self.body):
            raise InvalidKeyFormat

    def text(self) -> str:
        b = self.body
        return f"{self.prefix}-{b[0:4]}-{b[4:8]}-{b[8:12]}"

    def __repr__(self) -> str:
        # The plaintext code must never reach a log line, so even repr() shows only the hint.
        return f"ParsedCode({hint(self)!r}, product={self.product!r})"


def _values(symbols: str) -> bytes | None:
    """The symbols' values (0..33), or None if any of them is not in the alphabet."""
    if not symbols.isascii():
        return None
    values = symbols.encode("ascii").translate(_VALUE_OF)
    return None if _NOT_A_SYMBOL in values else values


def _weighted_sum(values: bytes) -> int:
    return sum(map(operator.mul, _WEIGHTS, values))


def check_symbol(first_eleven: str) -> str | None:
    """The check symbol completing eleven data symbols, or None if its value has no symbol."""
    values = _values(first_eleven) if len(first_eleven) == _DATA_LEN else None
    if values is None:
        raise ValueError(f"expected {_DATA_LEN} symbols from the alphabet")
    value = (-_weighted_sum(values) * _CHECK_WEIGHT_INVERSE) % _MODULUS
    return ALPHABET[value] if value < len(ALPHABET) else None


def is_valid_body(body: str) -> bool:
    values = _values(body) if len(body) == _BODY_LEN else None
    if values is None:
        return False
    return _weighted_sum(values) % _MODULUS == 0


def parse(raw: str) -> ParsedCode:
    text = raw.strip()
    # Reject non-ASCII before uppercasing: 'ß'.upper() == 'SS', 'ı'.upper() == 'I' and
    # 'ſ'.upper() == 'S' would otherwise turn lookalikes into a matching ASCII key.
    if not text.isascii():
        raise InvalidKeyFormat
    match = _CODE_RE.fullmatch(text.upper())
    if match is None:
        raise InvalidKeyFormat
    prefix, *groups = match.groups()
    body = "".join(groups)
    if not is_valid_body(body):
        raise InvalidKeyFormat
    return ParsedCode(prefix=prefix, product=PREFIXES[prefix], body=body)


def _make(prefix: str, data: str) -> ParsedCode | None:
    check = check_symbol(data)
    if check is None:
        return None
    return ParsedCode(prefix=prefix, product=PREFIXES[prefix], body=data + check)


def _require_prefix(prefix: str) -> None:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown prefix {prefix!r}")


def generate(
    prefix: str = "INT", randbelow: Callable[[int], int] = secrets.randbelow
) -> ParsedCode:
    """A fresh random code; ``randbelow`` is injectable only so tests can drive it."""
    _require_prefix(prefix)
    n = len(ALPHABET)
    while True:
        values = [randbelow(n) for _ in range(_DATA_LEN)]
        if any(not 0 <= v < n for v in values):
            raise ValueError("randbelow returned a value out of range")
        code = _make(prefix, "".join(ALPHABET[v] for v in values))
        if code is not None:
            return code


def derive(secret: bytes, scope: bytes, index: int, prefix: str = "INT") -> ParsedCode:
    """The code for (scope, index) under ``secret``: replaying an issue request re-mints it."""
    return Derivation(secret, scope, prefix).code(index)


class Derivation:
    """`derive` for many indexes of one (secret, scope, prefix): for a batch of 10,000 keys
    the HMAC is keyed once and its state copied for each index instead of starting over."""

    def __init__(self, secret: bytes, scope: bytes, prefix: str = "INT") -> None:
        _require_prefix(prefix)
        self._prefix, self._product = prefix, PREFIXES[prefix]
        # The suffix after scope has a fixed length, so distinct (scope, index, attempt) never
        # collide as messages even if scope itself contains NUL bytes.
        self._keyed = hmac.new(secret, scope + b"\x00", hashlib.sha256)

    def code(self, index: int) -> ParsedCode:
        if not 0 <= index < 2**64:
            raise ValueError("index must fit in 8 unsigned bytes")
        stem = index.to_bytes(8, "big") + b"\x00"
        for attempt in range(2**32):
            mac = self._keyed.copy()
            mac.update(stem + attempt.to_bytes(4, "big"))
            # Rejection sampling keeps every symbol equally likely; b % 34 over all bytes would
            # not: biased bytes are dropped, the rest map to ALPHABET[b % 34].
            symbols = mac.digest().translate(_SYMBOL_OF, _BIASED)
            if len(symbols) < _DATA_LEN:
                continue
            data = symbols[:_DATA_LEN]
            # check_symbol() on bytes already known to be symbols.
            check = (-_weighted_sum(data.translate(_VALUE_OF)) * _CHECK_WEIGHT_INVERSE) % _MODULUS
            if check < len(ALPHABET):
                body = data.decode("ascii") + ALPHABET[check]
                return ParsedCode(prefix=self._prefix, product=self._product, body=body)
        # Each attempt succeeds with probability ~0.92; running out of 2**32 attempts cannot happen.
        raise AssertionError("unreachable: no code derived")


def hint(code: ParsedCode) -> str:
    return f"{code.prefix}-••••-••••-{code.body[8:]}"
