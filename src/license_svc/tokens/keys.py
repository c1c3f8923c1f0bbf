"""The signing key, the retired public keys and the key set the service publishes.

`LICENSE_SVC_SIGNING_KEY_FILE` is a PEM Ed25519 private key: it signs every new token.
`LICENSE_SVC_RETIRED_SIGNING_KEYS` names PEM public keys of earlier signing keys: they sign
nothing, but stay in the published set until every token they signed has expired (the token TTL
after the rotation). Each key's `kid` is its RFC 7638 thumbprint, derived from the public key, so
every replica with the same files names a key the same way and no one has to choose ids.

The private key stays in this module's `SigningKey`, whose repr names only its `kid`: it is never
written to a log, an error or a metric, and the errors here name the file, never its content.
`KeyRing.reload()` (SIGHUP) swaps in a new snapshot whole; a file that does not load keeps the
ring in use and says so in one log line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from license_svc.config import PREFIX

from .claims import ALGORITHM

log = logging.getLogger("license_svc.tokens")
SIGNING_SETTING = PREFIX + "SIGNING_KEY_FILE"
RETIRED_SETTING = PREFIX + "RETIRED_SIGNING_KEYS"
PEM_PUBLIC = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


class KeyFileError(ValueError):
    """A key file that does not hold what its setting needs; the message names the setting."""


def public_jwk(public: Ed25519PublicKey) -> dict[str, str]:
    """The key as a JWK (RFC 8037: kty OKP, crv Ed25519, x), with its `kid`, `use` and `alg`."""
    jwk: dict[str, str] = OKPAlgorithm.to_jwk(public, as_dict=True)
    members = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}
    return {**members, "kid": thumbprint(members), "use": "sig", "alg": ALGORITHM}


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members (for OKP: crv, kty, x) in lexicographic
    order with no whitespace, base64url without padding."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey = field(repr=False, compare=False)

    def __repr__(self) -> str:  # the dataclass repr would be enough; said once more, on purpose
        return f"SigningKey(kid={self.kid!r})"


@dataclass(frozen=True)
class KeySet:
    """One loaded snapshot: the key that signs, and every public key published (it first)."""

    signing: SigningKey
    published: tuple[dict[str, str], ...]

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(jwk["kid"] for jwk in self.published)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(jwk) for jwk in self.published]}

    def jwks_json(self) -> str:
        return json.dumps(self.jwks(), separators=(",", ":"))


def load_private(path: Path, setting: str = SIGNING_SETTING) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_pem(path, setting), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's messages hold no key material, but they are not repeated anyway.
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{setting}: {path} is not a PEM Ed25519 private key")
    return key


def load_public(path: Path, setting: str = RETIRED_SETTING) -> list[Ed25519PublicKey]:
    """Every PEM public key in the file (one or several, one after the other; an empty file
    holds none, so a deployment can name its retired-keys file before its first rotation)."""
    data = _pem(path, setting)
    if b"PRIVATE KEY" in data:
        raise KeyFileError(
            f"{setting}: {path} holds a private key; publish its public key only"
            " (openssl pkey -in OLD.pem -pubout -out OLD.pub.pem)"
        )
    blocks = PEM_PUBLIC.findall(data)
    if data.strip() and not blocks:
        raise KeyFileError(f"{setting}: {path} holds no PEM public key")
    keys = []
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(f"{setting}: {path} holds a key that is not an Ed25519 public key")
        keys.append(key)
    return keys


def _pem(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"{setting}: cannot read {path}: {error.strerror}") from None


def load_keys(signing_file: Path, retired_files: Sequence[Path] = ()) -> KeySet:
    """The snapshot the files describe; KeyFileError naming the setting and file if not."""
    private = load_private(signing_file)
    current = public_jwk(private.public_key())
    published = [current]
    for path in retired_files:
        for public in load_public(path):
            jwk = public_jwk(public)
            if jwk["kid"] not in {p["kid"] for p in published}:  # the same key twice: once
                published.append(jwk)
    return KeySet(SigningKey(current["kid"], private), tuple(published))


class KeyRing:
    """The keys in use by this process, swapped whole by `reload()`."""

    def __init__(self, signing_file: Path, retired_files: Sequence[Path] = ()) -> None:
        self._files = (signing_file, tuple(retired_files))
        self._lock = threading.Lock()
        self._current = load_keys(signing_file, retired_files)

    @property
    def current(self) -> KeySet:
        return self._current

    def reload(self) -> bool:
        """Re-read the files (SIGHUP). A failure keeps the keys in use and logs one line."""
        with self._lock:
            try:
                fresh = load_keys(*self._files)
            except KeyFileError as error:
                log.error("signing keys not reloaded, the previous ones stay in use: %s", error)
                return False
            changed = fresh.kids != self._current.kids
            self._current = fresh
        log.info(
            "signing keys %s: signing with %s, publishing %d key(s)",
            "reloaded" if changed else "re-read (unchanged)",
            fresh.signing.kid,
            len(fresh.published),
        )
        return True
