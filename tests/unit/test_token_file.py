"""The tokens file: token, token_sha256 and mTLS identity entries, and its reload."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from license_svc.access.auth import AuthContext, Role, TokenTable, Unauthenticated

SPIFFE = "spiffe://fiscobridge.internal/integrations"


def table(tmp_path: Path, *entries: object) -> TokenTable:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(list(entries)))
    return TokenTable.from_file(path)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def peer(uris: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> Callable[[], AuthContext]:
    """grpc's auth context of a client certificate with these SANs."""
    context = {"peer_uri": [u.encode() for u in uris], "peer_dns": [d.encode() for d in dns]}
    return lambda: context


def test_a_token_may_be_listed_by_its_sha256(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"s3cret-token").hexdigest()
    tokens = table(tmp_path, {"token_sha256": digest.upper(), "role": "auditor", "name": "eve"})
    principal = tokens.authenticate(bearer("s3cret-token"))
    assert (principal.role, principal.name) == (Role.AUDITOR, "eve")
    with pytest.raises(Unauthenticated):
        tokens.authenticate(bearer(digest))  # the digest itself is no token


def test_a_listed_uri_or_dns_san_stands_for_a_token(tmp_path: Path) -> None:
    tokens = table(
        tmp_path,
        {"identity": SPIFFE, "role": "integrations"},
        {"identity": "acme-backoffice.svc", "role": "reseller", "reseller_id": "acme"},
    )
    by_uri = tokens.authenticate((), peer(uris=(SPIFFE,), dns=("unlisted.svc",)))
    assert (by_uri.role, by_uri.name) == (Role.INTEGRATIONS, SPIFFE)
    by_dns = tokens.authenticate((), peer(dns=("other.svc", "acme-backoffice.svc")))
    assert (by_dns.role, by_dns.reseller_id) == (Role.RESELLER, "acme")


def test_an_unlisted_or_absent_certificate_identity_is_unauthenticated(tmp_path: Path) -> None:
    tokens = table(tmp_path, {"identity": SPIFFE, "role": "integrations"})
    with pytest.raises(Unauthenticated, match="not listed"):
        tokens.authenticate((), peer(uris=("spiffe://fiscobridge.internal/other",)))
    with pytest.raises(Unauthenticated, match="Missing bearer token"):
        tokens.authenticate((), peer())
    with pytest.raises(Unauthenticated):
        tokens.authenticate(())  # plaintext: no auth context at all


def test_a_bearer_token_decides_over_the_certificate(tmp_path: Path) -> None:
    tokens = table(
        tmp_path, {"identity": SPIFFE, "role": "integrations"}, {"token": "t-ops", "role": "ops"}
    )
    assert tokens.authenticate(bearer("t-ops"), peer(uris=(SPIFFE,))).role is Role.OPS
    with pytest.raises(Unauthenticated):
        tokens.authenticate(bearer("wrong"), peer(uris=(SPIFFE,)))


def test_a_certificate_matching_two_entries_is_refused(tmp_path: Path) -> None:
    tokens = table(
        tmp_path,
        {"identity": SPIFFE, "role": "integrations"},
        {"identity": "ops.svc", "role": "ops"},
    )
    with pytest.raises(Unauthenticated, match="more than one"):
        tokens.authenticate((), peer(uris=(SPIFFE,), dns=("ops.svc",)))


@pytest.mark.parametrize(
    "entries",
    [
        {"token": "t", "role": "ops"},
        ["not an entry"],
        [{"token": "t", "token_sha256": "a" * 64, "role": "ops"}],
        [{"token": "t", "token_sha256": "a" * 64, "identity": SPIFFE, "role": "ops"}],
        [{"token_sha256": "abc", "role": "ops"}],
        [{"token_sha256": "z" * 64, "role": "ops"}],
        [{"identity": "", "role": "ops"}],
        [{"identity": SPIFFE, "role": "ops"}, {"identity": SPIFFE, "role": "auditor"}],
        [
            {"token": "t", "role": "ops"},
            {"token_sha256": hashlib.sha256(b"t").hexdigest(), "role": "ops"},
        ],
        [{"identity": "acme.svc", "role": "reseller"}],
    ],
    ids=[
        "object-not-list",
        "entry-not-object",
        "two-tokens",  # an identity and a token are one entry bound together: test_auth_table
        "two-tokens-and-an-identity",
        "short-sha256",
        "non-hex-sha256",
        "empty-identity",
        "identity-twice",
        "token-twice",
        "reseller-without-id",
    ],
)
def test_a_malformed_tokens_file_is_refused_naming_the_file(
    entries: object, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match=r"tokens\.json"):
        TokenTable.from_file(path)


def test_reload_swaps_the_table_and_a_malformed_file_keeps_the_old_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps([{"token": "old", "role": "ops"}]))
    tokens = TokenTable.from_file(path)
    path.write_text(json.dumps([{"token": "new", "role": "auditor"}]))
    assert tokens.reload()
    assert tokens.authenticate(bearer("new")).role is Role.AUDITOR
    with pytest.raises(Unauthenticated):
        tokens.authenticate(bearer("old"))
    for broken in ('[{"token": "x", "role": "ops"}', '{"token": "x"}', None):
        caplog.clear()
        if broken is None:
            path.unlink()
        else:
            path.write_text(broken)
        with caplog.at_level(logging.INFO, logger="license_svc.auth"):
            assert not tokens.reload()
        assert [r.levelno for r in caplog.records] == [logging.ERROR]
        assert "keeping the 1 entries in use" in caplog.records[0].getMessage()
        assert tokens.authenticate(bearer("new")).role is Role.AUDITOR
