"""A renewed certificate is served without a restart: SIGHUP (or a changed file) reloads the
server's certificate, key and client CA for new connections; a bad file keeps the ones in use,
with one log line naming it. A real server process; certificates made here."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.certs import CertificateAuthority, Issued
from tests.e2e.test_mtls import TlsServer
from tests.helpers import unique
from tests.support import Client

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + SETTINGS


class Refused(Exception):
    """The server ended the connection: it did not accept the client's certificate."""


def served_certificate(address: str, ca: CertificateAuthority, client: Issued | None) -> bytes:
    """The certificate a new TLS connection to `address` is served (DER), once the server has
    answered HTTP/2's preface (TLS 1.3 refuses a client certificate only after the handshake)."""
    context = ssl.create_default_context(cadata=ca.pem.decode())
    context.set_alpn_protocols(["h2"])
    if client is not None:
        folder = Path(tempfile.mkdtemp(prefix="probe-"))
        cert, key = client.write(folder, "client")
        context.load_cert_chain(cert, key)
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        served = tls.getpeercert(binary_form=True)
        try:
            tls.sendall(PREFACE)
            if not tls.recv(9):
                raise Refused(address)
        except (ssl.SSLError, ConnectionError) as error:
            raise Refused(address) from error
    assert served is not None
    return served


def der(issued: Issued) -> bytes:
    return x509.load_pem_x509_certificate(issued.cert).public_bytes(Encoding.DER)


def wait_for_log(server: TlsServer, text: str, before: int) -> None:
    deadline = time.monotonic() + 30
    while server.log_text().count(text) == before:
        assert time.monotonic() < deadline, f"no {text!r} in the server log"
        time.sleep(0.05)


def allowance(client: Client) -> None:
    client.entitlements.GetSeatAllowance(
        pb.GetSeatAllowanceRequest(account_id=unique("acct"), product=pb.PRODUCT_INTEGRATIONS),
        metadata=Client.as_("integrations"),
        timeout=10,
    )


def test_after_a_renewal_and_sighup_a_new_connection_gets_the_new_certificate(
    database_url: str, tmp_path: Path
) -> None:
    ca = CertificateAuthority()
    first = ca.issue("server", dns=("localhost",))
    cert, key = first.write(tmp_path, "server")
    server = TlsServer(
        grpc.ssl_channel_credentials(ca.pem),
        database_url,
        tmp_path / "server.log",
        LICENSE_SVC_TLS_CERT=str(cert),
        LICENSE_SVC_TLS_KEY=str(key),
    )
    try:
        old = server.client  # a connection made before the renewal
        allowance(old)
        assert served_certificate(server.address, ca, None) == der(first)

        renewed = ca.issue("server", dns=("localhost",))  # a new key too
        renewed.write(tmp_path, "server")
        before = server.log_text().count("TLS certificate reloaded")
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for_log(server, "TLS certificate reloaded", before)
        assert served_certificate(server.address, ca, None) == der(renewed)
        fresh = Client(server.address, grpc.ssl_channel_credentials(ca.pem))
        try:
            allowance(fresh)  # the new key signs the handshake
        finally:
            fresh.close()
        allowance(old)  # the connection made before goes on

        cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
        before = server.log_text().count("not reloaded")
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for_log(server, "not reloaded", before)
        assert served_certificate(server.address, ca, None) == der(renewed)  # kept
        lines = [line for line in server.log_text().splitlines() if "not reloaded" in line]
        assert len(lines) == 1 and str(cert) in lines[0] and "ERROR" in lines[0], lines
        assert server.process.poll() is None
    finally:
        server.stop()


def test_a_changed_client_ca_is_taken_for_new_connections_without_a_signal(
    database_url: str, tmp_path: Path
) -> None:
    old_ca, new_ca = CertificateAuthority("old CA"), CertificateAuthority("new CA")
    cert, key = old_ca.issue("server", dns=("localhost",)).write(tmp_path, "server")
    client_ca = tmp_path / "clients.pem"
    client_ca.write_bytes(old_ca.pem)
    probe = old_ca.issue("probe", uris=("spiffe://fiscobridge.internal/integrations",))
    server = TlsServer(
        grpc.ssl_channel_credentials(old_ca.pem, probe.key, probe.cert),
        database_url,
        tmp_path / "server.log",
        LICENSE_SVC_TLS_CERT=str(cert),
        LICENSE_SVC_TLS_KEY=str(key),
        LICENSE_SVC_TLS_CLIENT_CA=str(client_ca),
    )
    try:
        newcomer = new_ca.issue("newcomer", uris=("spiffe://x/newcomer",))
        with pytest.raises(Refused):
            served_certificate(server.address, old_ca, newcomer)
        client_ca.write_bytes(new_ca.pem)
        served_certificate(server.address, old_ca, newcomer)  # the next handshake takes it
        with pytest.raises(Refused):
            served_certificate(server.address, old_ca, probe)  # the old CA's no longer
        assert "TLS certificate reloaded" in server.log_text()
    finally:
        server.stop()
