"""Keyed hashes of codes: the only way a plaintext code is turned into something stored.

A key is found by HMAC-SHA256(pepper, normalised code); its first 16 bytes are the aggregate id,
so looking a key up by code is one primary-key read and nothing stored can be reversed into a
code without the pepper. Codes minted for an idempotent request are derived by HMAC too, so the
same request can be answered again without ever storing a code.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from uuid import UUID

from license_svc.domain import codes


class KeyIdentity:
    def __init__(self, pepper: bytes) -> None:
        # Separate sub-keys: a lookup hash can never be mistaken for a code-derivation input.
        lookup_key = hmac.digest(pepper, b"license-svc/key-lookup/v1", hashlib.sha256)
        self._mint_key = hmac.digest(pepper, b"license-svc/code-derivation/v1", hashlib.sha256)
        self._plan_key = hmac.digest(pepper, b"license-svc/plan-id/v1", hashlib.sha256)
        # Keyed once; each lookup hash copies this state (copies never change the original, so
        # threads share it safely).
        self._lookup = hmac.new(lookup_key, digestmod=hashlib.sha256)

    def key_id(self, code: codes.ParsedCode) -> UUID:
        mac = self._lookup.copy()
        mac.update(code.text().encode())
        return UUID(bytes=mac.digest()[:16])

    def mint(self, reseller_id: str, request_id: str, index: int, prefix: str) -> codes.ParsedCode:
        return codes.derive(self._mint_key, _scope(reseller_id, request_id), index, prefix=prefix)

    def mint_batch(
        self, reseller_id: str, request_id: str, count: int, prefix: str
    ) -> Iterator[codes.ParsedCode]:
        """`mint` for indexes 0..count-1, in order, lazily."""
        derivation = codes.Derivation(self._mint_key, _scope(reseller_id, request_id), prefix)
        return map(derivation.code, range(count))

    def plan_id(self, subscription_id: str) -> UUID:
        """A plan's aggregate id, derived from the provider's subscription id like a key's from
        its code, so two deliveries for one subscription meet on one aggregate."""
        digest = hmac.digest(self._plan_key, subscription_id.encode(), "sha256")
        return UUID(bytes=digest[:16], version=4)

    def batch_id(self, reseller_id: str, request_id: str) -> UUID:
        digest = hmac.digest(
            self._mint_key, b"batch\x00" + _scope(reseller_id, request_id), "sha256"
        )
        return UUID(bytes=digest[:16], version=4)


def _scope(reseller_id: str, request_id: str) -> bytes:
    return reseller_id.encode() + b"\x00" + request_id.encode()
