"""What a token says and how it is headed: shared by the minter and the verifier."""

from __future__ import annotations

from datetime import UTC, datetime

ISSUER = "license-svc"
AUDIENCE = "integrations"
TYPE = "license-svc-allowance+jwt"
ALGORITHM = "EdDSA"  # JOSE's name for Ed25519 signatures (RFC 8037)
# Every claim a token carries; `tier` and `valid_until` may be null (no active entitlement,
# nothing due to change).
CLAIMS = (
    "iss", "sub", "aud", "product", "tier", "seats", "active", "valid_until", "position",
    "iat", "nbf", "exp", "jti",
)  # fmt: skip


def numeric_date(instant: datetime) -> int | float:
    """An instant as a JWT NumericDate: whole seconds when it has no fraction (the usual case),
    else seconds with microseconds, so that it equals the allowance's `valid_until` exactly."""
    seconds = instant.timestamp()
    return int(seconds) if instant.microsecond == 0 else round(seconds, 6)


def instant(value: int | float) -> datetime:
    return datetime.fromtimestamp(value, UTC)
