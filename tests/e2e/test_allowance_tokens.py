"""GetAllowanceToken, GetSigningKeys and WatchSeatAllowance `with_token` over a real channel, with
the views kept in the server's process and time moved by an injected clock (rules §13)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.tokens.verify import verify_allowance_token
from tests.e2e.test_entitlements import activate_new_key, allowance
from tests.helpers import rich, unique
from tests.support import Client, FakeClock

WAIT = 30.0
TTL = 900  # the default


@pytest.fixture
def api(serve_projected: Callable[..., tuple[Client, Service]]) -> Client:
    return serve_projected()[0]


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_for(client: Client, account: str, position: int = 0, role: str = "integrations"):
    answer: pb.GetAllowanceTokenResponse = client.entitlements.GetAllowanceToken(
        pb.GetAllowanceTokenRequest(
            account_id=account, product=pb.PRODUCT_INTEGRATIONS, min_position=position
        ),
        metadata=client.as_(role),
        timeout=WAIT,
    )
    return answer


def jwks_of(client: Client, role: str = "integrations") -> str:
    answer: pb.GetSigningKeysResponse = client.entitlements.GetSigningKeys(
        pb.GetSigningKeysRequest(), metadata=client.as_(role), timeout=WAIT
    )
    return answer.jwks


def independently_verified(token: str, jwks: str) -> dict[str, Any]:
    """The payload, once the Ed25519 signature over the compact form is checked by
    `cryptography` directly (no JOSE library involved)."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64url(header_b64))
    assert header["alg"] == "EdDSA" and header["typ"] == "license-svc-allowance+jwt"
    (key,) = [k for k in json.loads(jwks)["keys"] if k["kid"] == header["kid"]]
    public = Ed25519PublicKey.from_public_bytes(b64url(key["x"]))
    public.verify(b64url(signature_b64), f"{header_b64}.{payload_b64}".encode())
    payload: dict[str, Any] = json.loads(b64url(payload_b64))
    return payload


def same_allowance(claims: dict[str, Any], answer: pb.SeatAllowance) -> None:
    assert claims["sub"] == answer.account_id
    assert claims["product"] == "integrations"
    assert claims["seats"] == answer.seats
    assert claims["active"] == answer.active
    assert claims["position"] == answer.position
    tier = pb.Tier.Name(answer.tier).removeprefix("TIER_").lower()
    assert claims["tier"] == (None if tier == "unspecified" else tier)
    until = answer.valid_until.ToDatetime().timestamp() if answer.HasField("valid_until") else None
    assert claims["valid_until"] == until


def test_a_token_verifies_without_the_signers_library_and_equals_the_allowance_at_its_position(
    api: Client, clock: FakeClock
) -> None:
    account = unique("acct")
    activate_new_key(api, account, pb.TIER_GROWTH, 3, 12)
    position = activate_new_key(api, account, pb.TIER_STARTER, 2, 1)
    answer = allowance(api, account, position=position)
    minted = token_for(api, account, position)
    jwks = jwks_of(api)

    claims = independently_verified(minted.token, jwks)
    same_allowance(claims, answer)
    assert (claims["iss"], claims["aud"]) == ("license-svc", "integrations")
    assert claims["exp"] == minted.expires_at.seconds
    shipped = verify_allowance_token(minted.token, jwks, clock())
    assert (shipped.seats, shipped.position, shipped.tier) == (5, answer.position, "growth")


def test_a_token_expires_within_its_ttl_and_never_after_valid_until(
    api: Client, clock: FakeClock
) -> None:
    account = unique("acct")
    position = activate_new_key(api, account, pb.TIER_GROWTH, 3, 1)
    valid_until = allowance(api, account, position=position).valid_until.ToDatetime()

    early = independently_verified(token_for(api, account, position).token, jwks_of(api))
    assert early["exp"] == early["iat"] + TTL <= valid_until.timestamp()

    clock.set(valid_until.replace(tzinfo=clock().tzinfo) - timedelta(seconds=60))
    late_answer = allowance(api, account, position=position)
    late = independently_verified(token_for(api, account, position).token, jwks_of(api))
    same_allowance(late, late_answer)
    assert late["exp"] == valid_until.timestamp() < late["iat"] + TTL


def test_a_token_for_an_account_with_nothing_active_says_active_false(api: Client) -> None:
    claims = independently_verified(token_for(api, unique("nobody")).token, jwks_of(api))
    assert (claims["active"], claims["seats"], claims["tier"]) == (False, 0, None)


def test_any_role_reads_the_keys_and_only_portal_integrations_and_ops_get_tokens(
    api: Client,
) -> None:
    for role in ("acme", "portal", "integrations", "auditor", "ops", "billing"):
        assert json.loads(jwks_of(api, role))["keys"]
    for role in ("portal", "ops"):
        assert token_for(api, unique("acct"), role=role).token
    for role in ("acme", "auditor", "billing"):
        with pytest.raises(grpc.RpcError) as denied:
            token_for(api, unique("acct"), role=role)
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_a_malformed_account_is_a_field_violation(api: Client) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        token_for(api, "acct\x00" + "x" * 1_000_000)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(rich(refused.value).violations) == ["account_id"]


def watch(client: Client, **fields: Any) -> Iterator[pb.WatchSeatAllowanceResponse]:
    stream: Iterator[pb.WatchSeatAllowanceResponse] = client.entitlements.WatchSeatAllowance(
        pb.WatchSeatAllowanceRequest(product=pb.PRODUCT_INTEGRATIONS, **fields),
        metadata=client.as_("integrations"),
        timeout=WAIT,
    )
    return stream


def test_a_watch_with_tokens_sends_a_token_with_every_allowance_and_refreshes_it(
    make_service: Callable[..., Service],
    clock: FakeClock,
    serve_in_process: Callable[[Service], Client],
) -> None:
    # A 2 s token is refreshed after 1 s when nothing changes.
    service = make_service(clock, allowance_token_ttl_seconds=2)
    bootstrap.start_projections(service)
    api = serve_in_process(service)
    account = unique("acct")
    position = activate_new_key(api, account, pb.TIER_GROWTH, 3, 12)
    allowance(api, account, position=position)
    stream = watch(api, account_id=account, with_token=True)
    jwks = jwks_of(api)

    first = next(stream)
    claims = independently_verified(first.token.token, jwks)
    same_allowance(claims, first.allowance)
    assert claims["exp"] == first.token.expires_at.seconds == claims["iat"] + 2

    refreshed = next(stream)  # nothing changed: the same allowance, a new token
    assert refreshed.allowance == first.allowance
    again = independently_verified(refreshed.token.token, jwks)
    assert again["jti"] != claims["jti"]

    changed_at = activate_new_key(api, account, pb.TIER_STARTER, 2, 12)
    changed = next(m for m in stream if m.allowance.position >= changed_at)
    assert changed.allowance.seats == 5
    same_allowance(independently_verified(changed.token.token, jwks), changed.allowance)
    stream.cancel()  # type: ignore[attr-defined]
    plain = watch(api, account_id=account)
    assert not next(plain).HasField("token")  # only a watch that asks gets tokens
    plain.cancel()  # type: ignore[attr-defined]


def test_the_change_feed_carries_no_tokens(api: Client) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        next(watch(api, with_token=True))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(rich(refused.value).violations) == ["with_token"]
