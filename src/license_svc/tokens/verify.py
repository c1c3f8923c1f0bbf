"""The verifier for callers in Python: an allowance token, the published key set and the time →
the claims, or `TokenRefused` with the reason.

    from license_svc.tokens.verify import TokenRefused, verify_allowance_token

    claims = verify_allowance_token(token, jwks_json, datetime.now(UTC))
    claims.seats, claims.active, claims.expires_at

It needs PyJWT and cryptography only: no settings, no database, nothing of the server. The time
is an argument, so a caller decides its clock (and a test its instant). What is refused, checked
in this order: a token that does not parse (`malformed`); a header `alg` other than EdDSA —
`none` and every HMAC or RSA/EC algorithm (`algorithm`); a `typ` other than
`license-svc-allowance+jwt` (`type`); a `kid` the key set does not hold, or that names a key
that is not Ed25519 (`unknown_kid`); a signature that does not verify (`bad_signature`); an
`aud` other than the one asked for (`audience`), an `iss` other than `license-svc` (`issuer`);
missing or ill-typed claims (`claims`); `now` at or after `exp` (`expired`) or before `nbf`
(`not_yet_valid`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from .claims import ALGORITHM, AUDIENCE, CLAIMS, ISSUER, TYPE, instant

ALGORITHMS = (ALGORITHM,)  # PyJWT names Ed25519 signatures EdDSA (RFC 8037)


class Refusal(str, Enum):
    MALFORMED = "malformed"
    ALGORITHM = "algorithm"
    TYPE = "type"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    AUDIENCE = "audience"
    ISSUER = "issuer"
    CLAIMS = "claims"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


class TokenRefused(Exception):
    """The token must not be relied on; `reason` says why, the message in words."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason


class KeySetError(ValueError):
    """What was given as the key set is not a JSON Web Key Set."""


@dataclass(frozen=True)
class AllowanceClaims:
    account_id: str
    product: str  # "integrations"
    tier: str | None  # "starter", "growth", "scale"; None when not active
    seats: int
    active: bool
    valid_until: datetime | None  # when the allowance next changes by itself
    position: int  # the view position the allowance was read at
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    token_id: str
    key_id: str


class PublishedKeys:
    """A key set parsed once: the Ed25519 public keys by `kid`. A caller that verifies many
    tokens keeps one (the bench measures it so); a JWKS given as text is parsed per call."""

    def __init__(self, jwks: str | bytes | Mapping[str, Any]) -> None:
        self._by_kid: dict[str, Ed25519PublicKey] = {}
        for jwk in _keys(jwks):
            if not isinstance(jwk, Mapping) or not isinstance(jwk.get("kid"), str):
                continue
            key = _ed25519(jwk)
            if key is not None and jwk["kid"] not in self._by_kid:
                self._by_kid[jwk["kid"]] = key

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._by_kid)

    def get(self, kid: str) -> Ed25519PublicKey:
        key = self._by_kid.get(kid)
        if key is None:
            raise TokenRefused(Refusal.UNKNOWN_KID, f"the key set holds no Ed25519 key {kid!r}")
        return key


def verify_allowance_token(
    token: str,
    jwks: PublishedKeys | str | bytes | Mapping[str, Any],
    now: datetime,
    *,
    audience: str = AUDIENCE,
    leeway_seconds: float = 0.0,
) -> AllowanceClaims:
    """The token's claims if it is sound at `now` for `audience`; else TokenRefused. `jwks` is
    GetSigningKeys' JSON text, its parsed form, or `PublishedKeys`."""
    header = _header(token)
    keys = jwks if isinstance(jwks, PublishedKeys) else PublishedKeys(jwks)
    key = keys.get(header["kid"])
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=list(ALGORITHMS),
            audience=audience,
            issuer=ISSUER,
            # Times are checked below against the caller's `now`, not PyJWT's clock.
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"],
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenRefused(Refusal.BAD_SIGNATURE, "the signature does not verify") from None
    except jwt.InvalidAudienceError:
        raise TokenRefused(Refusal.AUDIENCE, f"the token is not for {audience!r}") from None
    except jwt.InvalidIssuerError:
        raise TokenRefused(Refusal.ISSUER, f"the token was not issued by {ISSUER}") from None
    except jwt.MissingRequiredClaimError as error:
        raise TokenRefused(Refusal.CLAIMS, f"the token has no {error.claim!r}") from None
    except jwt.InvalidAlgorithmError:
        raise TokenRefused(Refusal.ALGORITHM, "the algorithm is not allowed") from None
    except jwt.PyJWTError as error:
        raise TokenRefused(Refusal.MALFORMED, str(error)) from None
    claims = _claims(payload, header["kid"])
    moment = now.timestamp()
    if moment >= claims.expires_at.timestamp() + leeway_seconds:
        raise TokenRefused(Refusal.EXPIRED, f"the token expired at {claims.expires_at:%FT%TZ}")
    if moment < claims.not_before.timestamp() - leeway_seconds:
        raise TokenRefused(
            Refusal.NOT_YET_VALID, f"the token is not valid before {claims.not_before:%FT%TZ}"
        )
    return claims


def _header(token: str) -> dict[str, Any]:
    if not isinstance(token, str) or token.count(".") != 2:
        raise TokenRefused(Refusal.MALFORMED, "not a JWS in compact form")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise TokenRefused(Refusal.MALFORMED, str(error)) from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:  # `none`, HS256 (a public key used as an HMAC secret), RS256, …
        raise TokenRefused(Refusal.ALGORITHM, f"the algorithm {alg!r} is not allowed")
    if header.get("typ") != TYPE:
        raise TokenRefused(Refusal.TYPE, f"the type {header.get('typ')!r} is not {TYPE}")
    if not isinstance(header.get("kid"), str):
        raise TokenRefused(Refusal.UNKNOWN_KID, "the token names no key (kid)")
    return header


def _keys(jwks: str | bytes | Mapping[str, Any]) -> list[Any]:
    try:
        parsed = json.loads(jwks) if isinstance(jwks, str | bytes) else jwks
    except ValueError:
        raise KeySetError("the key set is not JSON") from None
    keys = parsed.get("keys") if isinstance(parsed, Mapping) else None
    if not isinstance(keys, list):
        raise KeySetError('the key set is not a JSON Web Key Set ({"keys": [...]})')
    return keys


def _ed25519(jwk: Mapping[str, Any]) -> Ed25519PublicKey | None:
    """The key if the JWK is an Ed25519 public key; a key of another kind (an `oct` secret, RSA,
    a private key) is no key for these tokens."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "d" in jwk:
        return None
    try:
        key = OKPAlgorithm.from_jwk(dict(jwk))
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


def _claims(payload: dict[str, Any], kid: str) -> AllowanceClaims:
    missing = [name for name in CLAIMS if name not in payload]
    if missing:
        raise TokenRefused(Refusal.CLAIMS, f"the token has no {', '.join(missing)}")
    number = (int, float)
    kinds: dict[str, tuple[type, ...]] = {
        "sub": (str,), "product": (str,), "tier": (str, type(None)), "seats": (int,),
        "active": (bool,), "valid_until": (*number, type(None)), "position": (int,),
        "iat": number, "nbf": number, "exp": number, "jti": (str,),
    }  # fmt: skip
    wrong = [
        name
        for name, kind in kinds.items()
        if not isinstance(payload[name], kind)
        or (isinstance(payload[name], bool) and bool not in kind)
    ]
    if wrong:
        raise TokenRefused(Refusal.CLAIMS, f"ill-typed claims: {', '.join(wrong)}")
    until = payload["valid_until"]
    try:
        return _built(payload, kid, until)
    except (ValueError, OverflowError, OSError):  # a time no calendar holds
        raise TokenRefused(Refusal.CLAIMS, "a time claim is out of range") from None


def _built(payload: dict[str, Any], kid: str, until: float | None) -> AllowanceClaims:
    return AllowanceClaims(
        account_id=payload["sub"],
        product=payload["product"],
        tier=payload["tier"],
        seats=payload["seats"],
        active=payload["active"],
        valid_until=instant(until) if until is not None else None,
        position=payload["position"],
        issued_at=instant(payload["iat"]),
        not_before=instant(payload["nbf"]),
        expires_at=instant(payload["exp"]),
        token_id=payload["jti"],
        key_id=kid,
    )
