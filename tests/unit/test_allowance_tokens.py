"""Allowance tokens without a server: minted by `license_svc.tokens`, checked by the shipped
verifier and, independently, by `cryptography` over the compact form (rules §13)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from license_svc.config import write_signing_key
from license_svc.domain.subscription import Entitlement, Subscription, subscription_at
from license_svc.domain.tiers import Product, Tier
from license_svc.tokens.keys import KeyFileError, KeyRing, public_jwk, thumbprint
from license_svc.tokens.mint import AllowanceTokens
from license_svc.tokens.verify import Refusal, TokenRefused, verify_allowance_token

NOW = datetime(2026, 1, 31, 9, 30, 15, 250_000, tzinfo=UTC)
TTL = 900
TYPE = "license-svc-allowance+jwt"


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def growth(seats: int = 3, ends: datetime | None = None) -> Subscription:
    entitlement = Entitlement(
        key_id=uuid.uuid4(),
        account_id="acct-1",
        product=Product.INTEGRATIONS,
        tier=Tier.GROWTH,
        seats=seats,
        period_starts_at=NOW - timedelta(days=10),
        period_ends_at=ends or NOW + timedelta(days=300),
    )
    return subscription_at(Product.INTEGRATIONS, [entitlement], NOW)


def key_file(folder: Path, name: str = "signing.pem") -> Path:
    path = folder / name
    write_signing_key(path)
    return path


def public_pem(private_file: Path) -> bytes:
    private = serialization.load_pem_private_key(private_file.read_bytes(), password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing(key_file(tmp_path))


@pytest.fixture
def tokens(ring: KeyRing) -> AllowanceTokens:
    return AllowanceTokens(ring, TTL)


def jwks(ring: KeyRing) -> str:
    return ring.current.jwks_json()


def test_a_token_verifies_with_cryptography_alone_over_its_compact_form(
    tokens: AllowanceTokens, ring: KeyRing
) -> None:
    minted = tokens.mint("acct-1", Product.INTEGRATIONS, growth(), 41, NOW)
    header_b64, payload_b64, signature_b64 = minted.token.split(".")
    header = json.loads(b64url(header_b64))
    assert header == {"alg": "EdDSA", "kid": ring.current.signing.kid, "typ": TYPE}
    (published,) = json.loads(jwks(ring))["keys"]
    assert (published["kty"], published["crv"], published["kid"]) == (
        "OKP",
        "Ed25519",
        header["kid"],
    )
    public = Ed25519PublicKey.from_public_bytes(b64url(published["x"]))
    public.verify(b64url(signature_b64), f"{header_b64}.{payload_b64}".encode())  # raises if not


def test_the_claims_say_the_allowance_at_its_position(tokens: AllowanceTokens) -> None:
    found = growth(seats=5)
    minted = tokens.mint("acct-1", Product.INTEGRATIONS, found, 41, NOW)
    claims = verify_allowance_token(minted.token, jwks(tokens.keys), NOW)
    assert (claims.account_id, claims.product, claims.tier) == ("acct-1", "integrations", "growth")
    assert (claims.seats, claims.active, claims.position) == (5, True, 41)
    assert claims.valid_until == found.valid_until
    assert claims.issued_at == claims.not_before == NOW.replace(microsecond=0)
    assert claims.expires_at == minted.expires_at == claims.issued_at + timedelta(seconds=TTL)


def test_a_token_never_outlives_the_allowance_it_carries(tokens: AllowanceTokens) -> None:
    ends = NOW + timedelta(seconds=100, microseconds=700_000)
    minted = tokens.mint("acct-1", Product.INTEGRATIONS, growth(ends=ends), 7, NOW)
    claims = verify_allowance_token(minted.token, jwks(tokens.keys), NOW)
    assert claims.valid_until == ends
    assert claims.expires_at <= ends
    assert claims.expires_at <= claims.issued_at + timedelta(seconds=TTL)
    assert claims.expires_at == ends.replace(microsecond=0)


def test_a_token_for_an_inactive_account_says_so(tokens: AllowanceTokens) -> None:
    nothing = subscription_at(Product.INTEGRATIONS, [], NOW)
    minted = tokens.mint("acct-2", Product.INTEGRATIONS, nothing, 3, NOW)
    claims = verify_allowance_token(minted.token, jwks(tokens.keys), NOW)
    assert (claims.active, claims.seats, claims.tier, claims.valid_until) == (False, 0, None, None)


def test_a_token_is_refused_at_its_expiry_and_before_it_is_valid(tokens: AllowanceTokens) -> None:
    minted = tokens.mint("acct-1", Product.INTEGRATIONS, growth(), 1, NOW)
    keys = jwks(tokens.keys)
    verify_allowance_token(minted.token, keys, minted.expires_at - timedelta(microseconds=1))
    with pytest.raises(TokenRefused) as expired:
        verify_allowance_token(minted.token, keys, minted.expires_at)
    assert expired.value.reason is Refusal.EXPIRED
    with pytest.raises(TokenRefused) as early:
        verify_allowance_token(minted.token, keys, minted.issued_at - timedelta(seconds=1))
    assert early.value.reason is Refusal.NOT_YET_VALID


def test_changing_any_byte_of_header_payload_or_signature_is_refused(
    tokens: AllowanceTokens,
) -> None:
    token = tokens.mint("acct-1", Product.INTEGRATIONS, growth(), 1, NOW).token
    keys = jwks(tokens.keys)
    changed = 0
    for index, char in enumerate(token):
        for other in ("A", "w"):
            tampered = token[:index] + other + token[index + 1 :]
            if char == "." or other == char or decoded(tampered) == decoded(token):
                continue  # the last letter of a part carries bits that decoding drops
            with pytest.raises(TokenRefused):
                verify_allowance_token(tampered, keys, NOW)
            changed += 1
    assert changed >= len(token) - 2


def decoded(token: str) -> list[bytes]:
    return [b64url(part) for part in token.split(".")]


def test_a_changed_payload_is_refused_as_a_bad_signature(
    tokens: AllowanceTokens, ring: KeyRing
) -> None:
    header, payload, signature = tokens.mint(
        "acct-1", Product.INTEGRATIONS, growth(seats=1), 1, NOW
    ).token.split(".")
    claims = json.loads(b64url(payload))
    claims["seats"] = 1000
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenRefused) as refused:
        verify_allowance_token(f"{header}.{forged}.{signature}", jwks(ring), NOW)
    assert refused.value.reason is Refusal.BAD_SIGNATURE


def signed_claims(tokens: AllowanceTokens) -> dict[str, object]:
    return tokens.claims("acct-1", Product.INTEGRATIONS, growth(), 1, NOW)


def test_alg_none_is_refused(tokens: AllowanceTokens, ring: KeyRing) -> None:
    unsigned = jwt.encode(
        signed_claims(tokens),
        "",
        algorithm="none",
        headers={"kid": ring.current.signing.kid, "typ": TYPE},
    )
    with pytest.raises(TokenRefused) as refused:
        verify_allowance_token(unsigned, jwks(ring), NOW)
    assert refused.value.reason is Refusal.ALGORITHM


def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    tokens: AllowanceTokens, ring: KeyRing
) -> None:
    public_x = ring.current.published[0]["x"]
    forged = jwt.encode(
        signed_claims(tokens),
        public_x,
        algorithm="HS256",
        headers={"kid": ring.current.signing.kid, "typ": TYPE},
    )
    with pytest.raises(TokenRefused) as refused:
        verify_allowance_token(forged, jwks(ring), NOW)
    assert refused.value.reason is Refusal.ALGORITHM


def test_a_token_signed_by_a_key_not_in_the_set_is_refused(
    tokens: AllowanceTokens, tmp_path: Path
) -> None:
    stranger = AllowanceTokens(KeyRing(key_file(tmp_path, "stranger.pem")), TTL)
    token = stranger.mint("acct-1", Product.INTEGRATIONS, growth(), 1, NOW).token
    with pytest.raises(TokenRefused) as refused:
        verify_allowance_token(token, jwks(tokens.keys), NOW)
    assert refused.value.reason is Refusal.UNKNOWN_KID


def test_a_token_for_another_audience_or_of_another_type_is_refused(
    tokens: AllowanceTokens, ring: KeyRing
) -> None:
    token = tokens.mint("acct-1", Product.INTEGRATIONS, growth(), 1, NOW).token
    with pytest.raises(TokenRefused) as refused:
        verify_allowance_token(token, jwks(ring), NOW, audience="portal")
    assert refused.value.reason is Refusal.AUDIENCE

    signing = ring.current.signing
    elsewhere = {**signed_claims(tokens), "aud": "billing"}
    token = jwt.encode(elsewhere, signing.private, "EdDSA", {"kid": signing.kid, "typ": TYPE})
    with pytest.raises(TokenRefused) as refused:
        verify_allowance_token(token, jwks(ring), NOW)
    assert refused.value.reason is Refusal.AUDIENCE

    plain = jwt.encode(signed_claims(tokens), signing.private, "EdDSA", {"kid": signing.kid})
    with pytest.raises(TokenRefused) as refused:
        verify_allowance_token(plain, jwks(ring), NOW)
    assert refused.value.reason is Refusal.TYPE


def test_rotation_keeps_old_tokens_valid_until_their_key_is_no_longer_published(
    tmp_path: Path,
) -> None:
    signing_file, retired_file = key_file(tmp_path), tmp_path / "retired.pem"
    retired_file.write_bytes(b"")  # named before the first rotation: holds no key yet
    ring = KeyRing(signing_file, [retired_file])
    tokens = AllowanceTokens(ring, TTL)
    old_kid = ring.current.signing.kid
    before = tokens.mint("acct-1", Product.INTEGRATIONS, growth(), 1, NOW).token

    # Rotate: the old public key is published as retired, a new key signs.
    retired_file.write_bytes(public_pem(signing_file))
    write_signing_key(signing_file)
    assert ring.reload()
    assert ring.current.signing.kid != old_kid
    assert ring.current.kids == (ring.current.signing.kid, old_kid)
    after = tokens.mint("acct-1", Product.INTEGRATIONS, growth(), 2, NOW).token
    assert verify_allowance_token(before, jwks(ring), NOW).key_id == old_kid
    assert verify_allowance_token(after, jwks(ring), NOW).key_id == ring.current.signing.kid

    # Every token of the old key has expired: it is no longer published, and refused.
    retired_file.write_bytes(b"")
    assert ring.reload()
    assert ring.current.kids == (ring.current.signing.kid,)
    with pytest.raises(TokenRefused) as refused:
        verify_allowance_token(before, jwks(ring), NOW)
    assert refused.value.reason is Refusal.UNKNOWN_KID


def test_a_reload_from_a_broken_file_keeps_the_keys_in_use(tmp_path: Path) -> None:
    signing_file = key_file(tmp_path)
    ring = KeyRing(signing_file)
    kept = ring.current
    signing_file.write_text("not a key")
    assert not ring.reload()
    assert ring.current is kept


def test_the_kid_is_the_rfc_7638_thumbprint_of_the_public_key() -> None:
    # RFC 8037, appendix A.2 and A.3: the example Ed25519 key and its JWK thumbprint.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert thumbprint({"kty": "OKP", "crv": "Ed25519", "x": x}) == (
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    )
    d = b64url("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
    jwk = public_jwk(Ed25519PrivateKey.from_private_bytes(d).public_key())
    assert (jwk["x"], jwk["kid"]) == (x, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")


def test_no_key_file_error_or_repr_holds_the_private_key(tmp_path: Path) -> None:
    signing_file = key_file(tmp_path)
    ring = KeyRing(signing_file)
    body = "".join(signing_file.read_text().splitlines()[1:-1])
    assert body not in repr(ring.current) and body not in repr(ring.current.signing)
    assert '"d"' not in ring.current.jwks_json()
    with pytest.raises(KeyFileError) as as_retired:
        KeyRing(signing_file, [signing_file])  # a private key given as a retired public one
    assert body not in str(as_retired.value)
    assert "RETIRED_SIGNING_KEYS" in str(as_retired.value)
    public_file = tmp_path / "public.pem"
    public_file.write_bytes(public_pem(signing_file))
    with pytest.raises(KeyFileError) as as_signing:
        KeyRing(public_file)
    assert "SIGNING_KEY_FILE" in str(as_signing.value)


def test_the_verifier_imports_nothing_of_the_server() -> None:
    probe = (
        "import sys, license_svc.tokens.verify; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('license_svc', 'projections', 'psycopg', 'grpc', 'eventsourcing')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(
        [
            "license_svc",
            "license_svc.tokens",
            "license_svc.tokens.claims",
            "license_svc.tokens.verify",
        ]
    )
