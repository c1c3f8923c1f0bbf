"""The allowance tokens' keys in a real `license-svc serve`: refused at start-up when missing or
wrong (one line, exit 2), rotated by SIGHUP with the old key published until it is retired, and
the private key never in the log or on /metrics (rules §13)."""

from __future__ import annotations

import base64
import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from license_svc.config import write_signing_key
from license_svc.tokens.verify import Refusal, TokenRefused, verify_allowance_token
from tests.e2e.test_allowance_tokens import jwks_of, token_for
from tests.e2e.test_startup_failures import assert_one_line_failure, production_env, run_cli
from tests.helpers import unique
from tests.support import ServerProcess
from tests.views_support import wait_until


def public_pem(private_file: Path) -> bytes:
    private = serialization.load_pem_private_key(private_file.read_bytes(), password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def secrets_of(private_file: Path) -> list[str]:
    """Every spelling of the private key a leak could take: the PEM body, the raw 32 bytes in
    hex and in base64url (a JWK's `d`)."""
    private = serialization.load_pem_private_key(private_file.read_bytes(), password=None)
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    body = "".join(private_file.read_text().splitlines()[1:-1])
    return [body, raw.hex(), base64.urlsafe_b64encode(raw).rstrip(b"=").decode()]


@pytest.mark.parametrize(
    "case",
    ["unset", "not a key", "a public key", "an RSA key", "a private key retired"],
)
def test_serve_refuses_to_start_without_a_sound_signing_key(
    case: str, database_url: str, tmp_path: Path
) -> None:
    signing, other = tmp_path / "signing.pem", tmp_path / "other.pem"
    write_signing_key(signing)
    changes = {"LICENSE_SVC_SIGNING_KEY_FILE": str(signing)}
    setting = "LICENSE_SVC_SIGNING_KEY_FILE"
    if case == "unset":
        changes[setting] = "<unset>"
    elif case == "not a key":
        other.write_text("hello")
        changes[setting] = str(other)
    elif case == "a public key":
        other.write_bytes(public_pem(signing))
        changes[setting] = str(other)
    elif case == "an RSA key":
        from cryptography.hazmat.primitives.asymmetric import rsa

        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other.write_bytes(
            rsa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        changes[setting] = str(other)
    else:
        changes["LICENSE_SVC_RETIRED_SIGNING_KEYS"] = str(signing)
        setting = "LICENSE_SVC_RETIRED_SIGNING_KEYS"
    code, lines = run_cli(["serve"], production_env(database_url, **changes))
    assert_one_line_failure(code, lines, 2, setting)
    assert not any(secret in lines[0] for secret in secrets_of(signing))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    signing, retired = tmp_path / "signing.pem", tmp_path / "retired.pem"
    write_signing_key(signing)
    retired.write_bytes(b"")  # named from the start; empty until the first rotation
    return signing, retired


@pytest.fixture
def keyed_server(
    database_url: str, tmp_path: Path, keys: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    signing, retired = keys
    server = ServerProcess(
        database_url,
        tmp_path / "server.log",
        LICENSE_SVC_SIGNING_KEY_FILE=str(signing),
        LICENSE_SVC_RETIRED_SIGNING_KEYS=str(retired),
    )
    yield server
    server.stop()


def published(server: ServerProcess) -> list[str]:
    return [key["kid"] for key in json.loads(jwks_of(server.client))["keys"]]


def test_rotation_by_sighup_keeps_old_tokens_valid_until_the_old_key_is_withdrawn(
    keyed_server: ServerProcess, keys: tuple[Path, Path]
) -> None:
    signing, retired = keys
    client, account = keyed_server.client, unique("acct")
    (old_kid,) = published(keyed_server)
    before = token_for(client, account).token
    old_secrets = secrets_of(signing)

    # 1. The old public key joins the retired file, a new private key replaces the old; SIGHUP.
    retired.write_bytes(public_pem(signing))
    write_signing_key(signing)
    new_secrets = secrets_of(signing)
    os.kill(keyed_server.process.pid, signal.SIGHUP)
    wait_until(lambda: len(published(keyed_server)) == 2, "the new key published")
    new_kid, still = published(keyed_server)
    assert still == old_kid and new_kid != old_kid
    after = token_for(client, account).token
    now = datetime.now(UTC)
    assert verify_allowance_token(before, jwks_of(client), now).key_id == old_kid
    assert verify_allowance_token(after, jwks_of(client), now).key_id == new_kid

    # 2. Once the old key's tokens have expired: withdrawn from the retired file; SIGHUP.
    retired.write_bytes(b"")
    os.kill(keyed_server.process.pid, signal.SIGHUP)
    wait_until(lambda: published(keyed_server) == [new_kid], "the old key withdrawn")
    with pytest.raises(TokenRefused) as refused:
        verify_allowance_token(before, jwks_of(client), datetime.now(UTC))
    assert refused.value.reason is Refusal.UNKNOWN_KID

    # 3. A broken key file on SIGHUP keeps the key in use, and says so.
    signing.write_text("not a key")
    os.kill(keyed_server.process.pid, signal.SIGHUP)
    wait_until(lambda: "signing keys not reloaded" in keyed_server.log_text(), "the log line")
    assert published(keyed_server) == [new_kid]

    url = f"http://127.0.0.1:{keyed_server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        metrics = answer.read().decode()
    for text in (keyed_server.log_text(), metrics):
        assert not any(secret in text for secret in old_secrets + new_secrets)
