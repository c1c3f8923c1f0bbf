"""The endpoints' secrets and the Standard Webhooks signature.

A secret is `whsec_` + base64 of 32 random bytes, shown once by CreateWebhookEndpoint. At rest it
is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the server secret the process
is given, with the endpoint's id as associated data: a dump of the database holds only
ciphertext, and a sealed secret copied onto another endpoint's row does not open. The sender
opens it to sign; nothing else reads it, and no log line holds it.

Signature (Standard Webhooks, `v1`): base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed
with the secret's decoded bytes, sent as `webhook-signature: v1,<signature>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "whsec_"
SECRET_BYTES = 32
NONCE_BYTES = 12
KDF_INFO = b"license-svc/webhook-secrets/v1"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


class SecretBox:
    """Seals and opens endpoint secrets with a key derived from the server secret."""

    def __init__(self, server_secret: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KDF_INFO).derive(
            server_secret
        )
        self._aead = AESGCM(key)
        # A short fingerprint of the derived key, stored beside each sealed secret: a sender
        # given another server secret says so instead of failing every signature.
        self.key_id = hashlib.sha256(b"key-id:" + key).hexdigest()[:16]

    def seal(self, secret: str, endpoint_id: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), endpoint_id.encode())

    def open(self, sealed: bytes, endpoint_id: str) -> str:
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        return self._aead.decrypt(nonce, ciphertext, endpoint_id.encode()).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": "license-svc-webhooks/1",
    }
