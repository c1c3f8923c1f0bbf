"""Mutual TLS identities (issue 7): a real server process with TLS and a client CA; client
certificates made here. A listed URI or DNS SAN gets its role with no token; an unlisted one
is UNAUTHENTICATED; a certificate of another CA never gets a connection; SIGHUP with a new
tokens file changes who may call, with no restart, and a malformed one changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.certs import CertificateAuthority, Issued
from tests.helpers import rich, unique
from tests.support import TOKENS, Client, ServerProcess

INTEGRATIONS = "spiffe://fiscobridge.internal/integrations"
OPS_DNS = "ops.svc.fiscobridge.internal"
NEWCOMER = "spiffe://fiscobridge.internal/newcomer"
BILLING = "spiffe://fiscobridge.internal/billing"
BOUND_TOKEN = "billing-token-bound-to-its-certificate"


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_file(*entries: dict[str, str]) -> str:
    base = [
        {"token_sha256": sha256(TOKENS["portal"]), "role": "portal"},  # no secret in the file
        {"token": TOKENS["ops"], "role": "ops"},
        {"identity": BILLING, "token": BOUND_TOKEN, "role": "billing"},  # both must match
    ]
    return json.dumps([*base, *entries])


class TlsServer(ServerProcess):
    def __init__(
        self, credentials: grpc.ChannelCredentials, database_url: str, log: Path, **env: str
    ) -> None:
        self.credentials = credentials  # the health probe's: a listed client certificate
        super().__init__(database_url, log, **env)

    def new_client(self) -> Client:
        return Client(self.address, self.credentials)


@dataclass
class Mesh:
    ca: CertificateAuthority
    server: ServerProcess
    tokens: Path
    clients: list[Client]

    def client(self, cert: Issued | None, ca: CertificateAuthority | None = None) -> Client:
        credentials = grpc.ssl_channel_credentials(
            (ca or self.ca).pem,
            cert.key if cert else None,
            cert.cert if cert else None,
        )
        client = Client(self.server.address, credentials)
        self.clients.append(client)
        return client

    def reload(self, text: str, expect: str) -> None:
        """Write the tokens file, SIGHUP the server, wait for its log line saying so."""
        before = self.server.log_text().count(expect)
        self.tokens.write_text(text)
        os.kill(self.server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while self.server.log_text().count(expect) == before:
            assert time.monotonic() < deadline, f"no {expect!r} in the server log"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def mesh(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("mtls")
    ca = CertificateAuthority()
    cert, key = ca.issue("server", dns=("localhost",)).write(folder, "server")
    (folder / "ca.crt").write_bytes(ca.pem)
    tokens = folder / "tokens.json"
    tokens.write_text(
        tokens_file(
            {"identity": INTEGRATIONS, "role": "integrations"},
            {"identity": OPS_DNS, "role": "ops"},
        )
    )
    probe = ca.issue("probe", uris=(INTEGRATIONS,))
    server = TlsServer(
        grpc.ssl_channel_credentials(ca.pem, probe.key, probe.cert),
        database_url,
        folder / "server.log",
        LICENSE_SVC_TLS_CERT=str(cert),
        LICENSE_SVC_TLS_KEY=str(key),
        LICENSE_SVC_TLS_CLIENT_CA=str(folder / "ca.crt"),
        LICENSE_SVC_TOKENS_FILE=str(tokens),
    )
    mesh = Mesh(ca, server, tokens, [])
    yield mesh
    for client in mesh.clients:
        client.close()
    server.stop()


def allowance(client: Client, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    client.entitlements.GetSeatAllowance(
        pb.GetSeatAllowanceRequest(account_id=unique("acct"), product=pb.PRODUCT_INTEGRATIONS),
        metadata=metadata,
        timeout=10,
    )


def refused(call: object, *args: object, **kwargs: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        call(*args, **kwargs)  # type: ignore[operator]
    code: grpc.StatusCode = error.value.code()  # type: ignore[attr-defined]
    return code


def test_a_listed_uri_or_dns_san_gets_its_role_with_no_token(mesh: Mesh) -> None:
    integrations = mesh.client(mesh.ca.issue("integrations", uris=(INTEGRATIONS,)))
    allowance(integrations)
    issue = pb.IssueKeysRequest(reseller_id="acme", count=1, request_id=unique("req"))
    denied = refused(integrations.keys.IssueKeys, issue, timeout=10)
    assert denied is grpc.StatusCode.PERMISSION_DENIED  # the integrations role, nothing more
    ops = mesh.client(mesh.ca.issue("ops-console", dns=(OPS_DNS,)))
    status = ops.ops.GetProjectionStatus(pb.GetProjectionStatusRequest(), timeout=10)
    assert status.head_position >= 0


def test_an_unlisted_identity_is_unauthenticated_unless_it_sends_a_token(mesh: Mesh) -> None:
    stranger = mesh.client(mesh.ca.issue("stranger", uris=(NEWCOMER,), dns=("stranger.svc",)))
    assert refused(allowance, stranger) is grpc.StatusCode.UNAUTHENTICATED
    # A bearer token decides when one is sent, listed by its SHA-256 or in the clear.
    allowance(stranger, Client.as_("portal"))
    allowance(stranger, Client.as_("ops"))
    assert refused(allowance, stranger, Client.as_("auditor")) is grpc.StatusCode.UNAUTHENTICATED


def test_a_certificate_of_another_ca_or_none_gets_no_connection(mesh: Mesh) -> None:
    other_ca = CertificateAuthority("someone else's CA")
    impostor = mesh.client(other_ca.issue("integrations", uris=(INTEGRATIONS,)))
    assert refused(allowance, impostor, Client.as_("ops")) is grpc.StatusCode.UNAVAILABLE
    anonymous = mesh.client(None)
    assert refused(allowance, anonymous, Client.as_("ops")) is grpc.StatusCode.UNAVAILABLE


def test_sighup_with_a_new_tokens_file_changes_who_may_call_without_a_restart(
    mesh: Mesh,
) -> None:
    pid = mesh.server.process.pid
    integrations = mesh.client(mesh.ca.issue("integrations-2", uris=(INTEGRATIONS,)))
    newcomer = mesh.client(mesh.ca.issue("newcomer", uris=(NEWCOMER,)))
    allowance(integrations)
    assert refused(allowance, newcomer) is grpc.StatusCode.UNAUTHENTICATED

    mesh.reload(
        tokens_file(
            {"identity": NEWCOMER, "role": "integrations"},
            {"identity": OPS_DNS, "role": "ops"},
        ),
        "reloaded: ",
    )
    allowance(newcomer)
    assert refused(allowance, integrations) is grpc.StatusCode.UNAUTHENTICATED

    mesh.reload('[{"identity": "spiffe://x", "role": "integrations"', "not reloaded")
    allowance(newcomer)  # the table in use is kept
    assert refused(allowance, integrations) is grpc.StatusCode.UNAUTHENTICATED
    errors = [line for line in mesh.server.log_text().splitlines() if "not reloaded" in line]
    assert len(errors) == 1 and "ERROR" in errors[0], errors
    assert mesh.server.process.poll() is None and mesh.server.process.pid == pid

    mesh.reload(  # back to the fixture's table for the other tests
        tokens_file(
            {"identity": INTEGRATIONS, "role": "integrations"},
            {"identity": OPS_DNS, "role": "ops"},
        ),
        "reloaded: ",
    )
    with pytest.raises(grpc.RpcError) as raised:
        allowance(newcomer)
    error = rich(raised.value)
    assert error.code is grpc.StatusCode.UNAUTHENTICATED and NEWCOMER in error.message


def test_a_token_bound_to_an_identity_is_refused_from_another_certificate(mesh: Mesh) -> None:
    bound = (("authorization", f"Bearer {BOUND_TOKEN}"),)
    plan = pb.RecordPlanEventRequest()  # malformed on purpose: only who may call is tested here
    billing = mesh.client(mesh.ca.issue("billing", uris=(BILLING,)))
    with pytest.raises(grpc.RpcError) as answered:
        billing.billing.RecordPlanEvent(plan, metadata=bound, timeout=10)
    assert rich(answered.value).code is grpc.StatusCode.INVALID_ARGUMENT  # past the door
    other = mesh.client(mesh.ca.issue("billing-impostor", uris=(NEWCOMER,)))
    with pytest.raises(grpc.RpcError) as refused_call:
        other.billing.RecordPlanEvent(plan, metadata=bound, timeout=10)
    error = rich(refused_call.value)
    assert error.code is grpc.StatusCode.UNAUTHENTICATED and "bound" in error.message
    assert refused(allowance, billing) is grpc.StatusCode.UNAUTHENTICATED  # no token: not listed
