"""Bearer-token authentication and the who-may-call-what table of rules §8.

Tokens come from a JSON file: a list of {"token", "role", "reseller_id"?}. Tokens are compared
by their SHA-256 so that the table in memory holds no token and lookups take constant time.
What a reseller may do with a particular key (only its own) is decided by the servicer, which
knows the key; this table decides only which roles may call a method at all.
"""

from __future__ import annotations

import hashlib
import json
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class Role(str, Enum):
    RESELLER = "reseller"
    PORTAL = "portal"
    INTEGRATIONS = "integrations"
    AUDITOR = "auditor"
    OPS = "ops"
    BILLING = "billing"


@dataclass(frozen=True)
class Principal:
    role: Role
    reseller_id: str = ""
    name: str = ""

    @property
    def is_ops(self) -> bool:
        return self.role is Role.OPS


class Unauthenticated(Exception):
    pass


class PermissionDenied(Exception):
    pass


_PKG = "/fiscobridge.licensing.v1."
R, P, IN, A, OPS = Role.RESELLER, Role.PORTAL, Role.INTEGRATIONS, Role.AUDITOR, Role.OPS
B = Role.BILLING
ACCESS: dict[str, frozenset[Role]] = {
    _PKG + "KeyService/IssueKeys": frozenset({R, OPS}),
    _PKG + "KeyService/RevokeKey": frozenset({R, OPS}),
    _PKG + "KeyService/GetKey": frozenset({R, A, OPS}),
    _PKG + "KeyService/ListKeys": frozenset({R, A, OPS}),
    _PKG + "ActivationService/ValidateKey": frozenset({P}),
    _PKG + "ActivationService/ActivateKey": frozenset({P}),
    _PKG + "EntitlementService/GetSubscriptionSummary": frozenset({P, IN, A, OPS}),
    _PKG + "EntitlementService/GetSeatAllowance": frozenset({P, IN, A, OPS}),
    # One account: portal, integrations, ops; every account (no account_id): integrations, ops
    # only — the servicer decides that part, it knows the request.
    _PKG + "EntitlementService/WatchSeatAllowance": frozenset({P, IN, OPS}),
    _PKG + "AuditService/GetKeyHistory": frozenset({A, OPS}),
    _PKG + "AuditService/StreamEvents": frozenset({A, OPS}),
    # Resellers: their own reseller_id only (the servicer scopes it).
    _PKG + "OpsService/GetKeyStats": frozenset({R, OPS}),
    _PKG + "OpsService/ListExpiringSubscriptions": frozenset({R, OPS}),
    _PKG + "OpsService/GetProjectionStatus": frozenset({OPS}),
    _PKG + "OpsService/LiftAttemptBlock": frozenset({OPS}),
    _PKG + "BillingService/RecordPlanEvent": frozenset({B, OPS}),
}
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

current_principal: ContextVar[Principal] = ContextVar("current_principal")


def caller() -> Principal:
    """The principal of the RPC being served (set by the interceptor)."""
    return current_principal.get()


class TokenTable:
    def __init__(self, principals_by_digest: dict[bytes, Principal]) -> None:
        self._by_digest = principals_by_digest

    @classmethod
    def from_file(cls, path: Path) -> TokenTable:
        entries = json.loads(path.read_text())
        table: dict[bytes, Principal] = {}
        for index, entry in enumerate(entries):
            try:
                role = Role(entry["role"])
                token = str(entry["token"])
            except (KeyError, ValueError) as error:
                raise ValueError(f"{path}: entry {index} needs a token and a known role") from error
            reseller_id = str(entry.get("reseller_id", ""))
            if role is Role.RESELLER and not reseller_id:
                raise ValueError(f"{path}: reseller entry {index} needs a reseller_id")
            name = f"{role.value}:{reseller_id}" if reseller_id else role.value
            table[_digest(token)] = Principal(role, reseller_id, name)
        return cls(table)

    def authenticate(self, metadata: tuple[tuple[str, str | bytes], ...]) -> Principal:
        header = next((v for k, v in metadata if k == "authorization"), None)
        if header is None:
            raise Unauthenticated("Missing bearer token")
        text = header.decode() if isinstance(header, bytes) else header
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        principal = self._by_digest.get(_digest(token.strip()))
        if principal is None:
            raise Unauthenticated("Unknown bearer token")
        return principal


def needs_token(method: str) -> bool:
    return not method.startswith(OPEN_PREFIXES)


def authorize(method: str, principal: Principal) -> None:
    allowed = ACCESS.get(method)
    if allowed is None or principal.role not in allowed:
        name = method.rsplit("/", 1)[-1]
        raise PermissionDenied(f"Role '{principal.role.value}' may not call {name}")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
