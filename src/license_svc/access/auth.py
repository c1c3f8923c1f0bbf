"""Who is calling (bearer tokens, mTLS identities) and the who-may-call-what table of rules §8.

The tokens file is a JSON list; each entry names a `role` (+ `reseller_id` for a reseller, an
optional `name` for the audit) and one credential:
  {"token": "..."}           a bearer token;
  {"token_sha256": "<hex>"}  the same, given by its SHA-256, so the file holds no secret;
  {"identity": "..."}        with mutual TLS: a client certificate whose URI SAN (SPIFFE-style,
                             `spiffe://fiscobridge.internal/integrations`) or DNS SAN is this
                             value stands for the entry, with no token;
  {"identity": "...", "token": "..."} (or `token_sha256`)  a token bound to a certificate: both
                             must match, so a stolen token is no use from another machine.
A bearer token, when the call sends one, decides; else the certificate's listed identity. A
call with more than one `authorization` header is refused (which would count?). Tokens
are compared by their SHA-256, so the table in memory holds no token and lookups take constant
time. `reload` re-reads the file (on SIGHUP): a malformed file keeps the table in use.
What a reseller may do with a particular key (only its own) is decided by the servicer, which
knows the key; this table decides only which roles may call a method at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
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
    # Rules §13: a signed allowance for who may read one account's allowance live; the public
    # keys for any authenticated caller (`billing` too: nothing in them is secret).
    _PKG + "EntitlementService/GetAllowanceToken": frozenset({P, IN, OPS}),
    _PKG + "EntitlementService/GetSigningKeys": frozenset(Role),
    _PKG + "AuditService/GetKeyHistory": frozenset({A, OPS}),
    # Resellers: with their own reseller_id filter only (the servicer scopes it, rules §14).
    _PKG + "AuditService/StreamEvents": frozenset({R, A, OPS}),
    # Resellers: their own reseller_id only (the servicer scopes it).
    _PKG + "OpsService/GetKeyStats": frozenset({R, OPS}),
    _PKG + "OpsService/ListExpiringSubscriptions": frozenset({R, OPS}),
    _PKG + "OpsService/GetProjectionStatus": frozenset({OPS}),
    _PKG + "OpsService/LiftAttemptBlock": frozenset({OPS}),
    _PKG + "OpsService/GetSeatUsage": frozenset({R, OPS}),  # resellers: their own keys' accounts
    _PKG + "BillingService/RecordPlanEvent": frozenset({B, OPS}),
    # Resellers: their own endpoints only (the servicer scopes it); ops any.
    _PKG + "WebhookService/CreateWebhookEndpoint": frozenset({R, OPS}),
    _PKG + "WebhookService/ListWebhookEndpoints": frozenset({R, OPS}),
    _PKG + "WebhookService/DeleteWebhookEndpoint": frozenset({R, OPS}),
    _PKG + "WebhookService/ListWebhookDeliveries": frozenset({R, OPS}),
    _PKG + "WebhookService/RedeliverWebhook": frozenset({R, OPS}),
    _PKG + "SeatService/AcquireSeat": frozenset({IN, OPS}),
    _PKG + "SeatService/RenewSeats": frozenset({IN, OPS}),
    _PKG + "SeatService/ReleaseSeat": frozenset({IN, OPS}),
    _PKG + "SeatService/ListSeatLeases": frozenset({P, IN, OPS}),
}
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

current_principal: ContextVar[Principal] = ContextVar("current_principal")


def caller() -> Principal:
    """The principal of the RPC being served (set by the interceptor)."""
    return current_principal.get()


log = logging.getLogger("license_svc.auth")
AuthContext = Mapping[str, Iterable[bytes]]  # grpc's ServicerContext.auth_context()
# The certificate's identities, most specific first: grpc names the URI and DNS SANs so.
SAN_PROPERTIES = ("peer_uri", "peer_dns")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
CREDENTIALS = ("token", "token_sha256", "identity")
TOKENS = ("token", "token_sha256")
KNOWN_HEADERS = 1_024


@dataclass(frozen=True)
class Entries:
    by_digest: dict[bytes, Principal]
    by_identity: dict[str, Principal]
    bound: dict[bytes, str] = field(default_factory=dict)  # token digest → bound identity
    # Authorization headers already found in `by_digest` (a call needs no hash when its header
    # was seen): only known tokens get in, and only so many spellings of them.
    known_headers: dict[str, Principal] = field(default_factory=dict, compare=False)

    @property
    def size(self) -> int:
        return len(self.by_digest) + len(self.by_identity)


def parse_entries(text: str, source: object) -> Entries:
    """The table a tokens file describes; ValueError naming `source` and the entry if not."""
    entries = json.loads(text)  # a JSONDecodeError is a ValueError
    if not isinstance(entries, list):
        raise ValueError(f"{source}: must be a JSON list of entries")
    by_digest: dict[bytes, Principal] = {}
    by_identity: dict[str, Principal] = {}
    bound: dict[bytes, str] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: entry {index}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object")
        try:
            role = Role(entry.get("role"))
        except (TypeError, ValueError):
            raise ValueError(f"{where} needs a known role") from None
        given = [c for c in CREDENTIALS if c in entry]
        if any(not isinstance(entry[c], str) or not entry[c] for c in given) or not (
            len(given) == 1 or (len(given) == 2 and "identity" in given)
        ):
            raise ValueError(
                f"{where} needs exactly one of {', '.join(CREDENTIALS)}"
                " (or an identity and the token bound to it)"
            )
        binding = str(entry["identity"]) if len(given) == 2 else ""
        credential = next(c for c in given if c in TOKENS) if binding else given[0]
        value = entry[credential]
        reseller_id = str(entry.get("reseller_id", ""))
        if role is Role.RESELLER and not reseller_id:
            raise ValueError(f"{where}: a reseller needs a reseller_id")
        default_name = f"{role.value}:{reseller_id}" if reseller_id else role.value
        if credential == "identity":
            name = str(entry.get("name") or value)
            if value in by_identity:
                raise ValueError(f"{where}: identity {value!r} is listed twice")
            by_identity[value] = Principal(role, reseller_id, name)
            continue
        if credential == "token_sha256":
            if not SHA256_HEX.fullmatch(value.lower()):
                raise ValueError(f"{where}: token_sha256 must be 64 hex digits")
            digest = bytes.fromhex(value)
        else:
            digest = _digest(value)
        if digest in by_digest:
            raise ValueError(f"{where}: the same token is listed twice")
        by_digest[digest] = Principal(role, reseller_id, str(entry.get("name") or default_name))
        if binding:
            bound[digest] = binding
    return Entries(by_digest, by_identity, bound)


class TokenTable:
    def __init__(self, entries: Entries, source: Path | None = None) -> None:
        self._entries = entries  # replaced whole by `reload`: readers never see half a table
        self._source = source
        self._reloading = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> TokenTable:
        return cls(parse_entries(path.read_text(), path), path)

    @property
    def size(self) -> int:
        return self._entries.size

    def reload(self) -> bool:
        """Re-read the file this table came from. A file that cannot be read or parsed keeps
        the table in use, and says so in one log line."""
        if self._source is None:
            return False
        with self._reloading:
            try:
                entries = parse_entries(self._source.read_text(), self._source)
            except (OSError, ValueError) as error:
                log.error(
                    "tokens file not reloaded, keeping the %d entries in use: %s",
                    self._entries.size,
                    error,
                )
                return False
            self._entries = entries
        log.info("tokens file %s reloaded: %d entries", self._source, entries.size)
        return True

    def authenticate(
        self,
        metadata: tuple[tuple[str, str | bytes], ...],
        peer: Callable[[], AuthContext] | None = None,
    ) -> Principal:
        """The caller: by its bearer token if it sent one, else by its client certificate's
        listed identity (`peer` gives grpc's auth context; read only when needed)."""
        entries = self._entries
        headers = [v for k, v in metadata if k == "authorization"]
        if not headers:
            found = self._by_certificate(entries, peer() if peer is not None else {})
            if found is not None:
                return found
            raise Unauthenticated("Missing bearer token")
        if len(headers) > 1:  # judged by the first, a good token would carry a bad one
            raise Unauthenticated("Send exactly one authorization header")
        text = headers[0].decode() if isinstance(headers[0], bytes) else headers[0]
        known = entries.known_headers.get(text)  # never a bound token: see below
        if known is not None:
            return known
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        digest = _digest(token.strip())
        principal = entries.by_digest.get(digest)
        if principal is None:
            raise Unauthenticated("Unknown bearer token")
        binding = entries.bound.get(digest)
        if binding is not None:
            if binding not in _identities(peer() if peer is not None else {}):
                raise Unauthenticated("This token is bound to another client certificate")
        elif len(entries.known_headers) < KNOWN_HEADERS:
            entries.known_headers[text] = principal
        return principal

    def principal_of_digest(self, digest: bytes) -> Principal:
        """The principal of the token whose SHA-256 this is, if the table still lists it: the
        dashboard re-checks a session this way without keeping the token."""
        principal = self._entries.by_digest.get(digest)
        if principal is None:
            raise Unauthenticated("Unknown bearer token")
        return principal

    @staticmethod
    def _by_certificate(entries: Entries, context: AuthContext) -> Principal | None:
        identities = _identities(context)
        if not identities:
            return None
        listed = {entries.by_identity[i] for i in identities if i in entries.by_identity}
        if len(listed) > 1:  # two entries claim one certificate: refuse rather than guess
            raise Unauthenticated("The client certificate matches more than one listed identity")
        if not listed:
            raise Unauthenticated(
                f"Client certificate identity {identities[0]!r} is not listed; send a bearer token"
            )
        return listed.pop()


def _identities(context: AuthContext) -> list[str]:
    """The client certificate's SAN identities, most specific first."""
    return [
        value.decode(errors="replace") for prop in SAN_PROPERTIES for value in context.get(prop, ())
    ]


def needs_token(method: str) -> bool:
    return not method.startswith(OPEN_PREFIXES)


def authorize(method: str, principal: Principal) -> None:
    allowed = ACCESS.get(method)
    if allowed is None or principal.role not in allowed:
        name = method.rsplit("/", 1)[-1]
        raise PermissionDenied(f"Role '{principal.role.value}' may not call {name}")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
