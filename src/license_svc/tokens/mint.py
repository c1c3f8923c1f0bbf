"""The allowance token: an allowance read at a view position, signed with the current key.

The claims are those of `GetSeatAllowance` at the same position (rules §13): the account (`sub`),
`product`, `tier`, `seats`, `active`, `valid_until`, `position`. The token lives at most the TTL
and never past `valid_until`, the instant the allowance next changes by itself: a cached token can
never claim seats the account has stopped paying for. Times are whole seconds, rounded towards
the safe side (`iat` and `exp` down), so `exp` ≤ `iat` + TTL and `exp` ≤ `valid_until` hold
exactly. PyJWT encodes and signs; nothing here builds JSON or base64 by hand.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt

from license_svc.domain.subscription import Subscription
from license_svc.domain.tiers import Product

from .claims import ALGORITHM, AUDIENCE, ISSUER, TYPE, instant, numeric_date
from .keys import KeyRing


@dataclass(frozen=True)
class Minted:
    token: str
    expires_at: datetime
    issued_at: datetime

    def refresh_in(self, now: datetime) -> float:
        """Seconds from `now` until half the token's life has passed: when a holder (a watch)
        should have a fresh one, so it never holds an expired token while the service is up."""
        half = (self.expires_at - self.issued_at).total_seconds() / 2
        return max(0.0, half - (now - self.issued_at).total_seconds())


class AllowanceTokens:
    """Mints tokens with the ring's current signing key (the ring may be reloaded under it)."""

    def __init__(self, keys: KeyRing, ttl_seconds: int) -> None:
        self.keys = keys
        self.ttl_seconds = ttl_seconds

    def claims(
        self,
        account_id: str,
        product: Product,
        found: Subscription,
        position: int,
        now: datetime,
    ) -> dict[str, Any]:
        issued = math.floor(now.timestamp())
        expires = issued + self.ttl_seconds
        if found.valid_until is not None:
            expires = min(expires, math.floor(found.valid_until.timestamp()))
        tier = found.tier
        return {
            "iss": ISSUER,
            "sub": account_id,
            "aud": AUDIENCE,
            "product": product.value,
            "tier": tier.value if tier is not None else None,
            "seats": found.seats,
            "active": found.active,
            "valid_until": numeric_date(found.valid_until) if found.valid_until else None,
            "position": position,
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }

    def mint(self, *allowance: Any) -> Minted:
        """`claims(*allowance)` signed with the ring's current key."""
        return self.sign(self.claims(*allowance))

    def sign(self, claims: dict[str, Any]) -> Minted:
        signing = self.keys.current.signing
        token = jwt.encode(
            claims,
            signing.private,
            algorithm=ALGORITHM,
            headers={"kid": signing.kid, "typ": TYPE},
        )
        return Minted(token, instant(claims["exp"]), instant(claims["iat"]))
