"""The server's TLS files — certificate, key and client CA — re-read for new connections.

cert-manager (or any renewal) replaces the files every few weeks; a restart should not be
needed to serve the new ones. gRPC asks `_fetch` before every new connection's handshake
(`grpc.dynamic_ssl_server_credentials`): it hands over a configuration loaded since the last
connection, else None (keep the one in use). A configuration is loaded on SIGHUP (`reload`),
and whenever the files changed since they were last read (three `stat`s per new connection,
so a renewal needs no signal). Connections already open keep the certificate they began with.

A file that cannot be read, is not PEM, or a key that does not match the certificate keeps the
configuration in use, with one log line naming the file (once per change of the files, not
once per connection).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from pathlib import Path

import grpc

from license_svc.config import ConfigError

log = logging.getLogger("license_svc.tls")

Signature = tuple[tuple[int, int, int] | None, ...]


class BadTlsFile(ConfigError):
    """A TLS file that cannot serve; the message names it (at start-up: exit 2)."""


class TlsFiles:
    def __init__(self, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self._cert, self._key, self._ca = cert, key, client_ca
        self._lock = threading.Lock()
        self._seen = self._signature()
        self._initial = self._load()  # the start-up's files must be sound (BadTlsFile if not)
        self._pending: grpc.ServerCertificateConfiguration | None = None

    def credentials(self) -> grpc.ServerCredentials:
        # The stubs leave out grpc's "None: no change" from the fetcher's type.
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self._fetch,  # type: ignore[arg-type]
            require_client_authentication=self._ca is not None,
        )

    def reload(self) -> bool:
        """Load the files for the connections to come; a bad one keeps those in use."""
        with self._lock:
            self._seen = self._signature()
            try:
                loaded = self._load()
            except BadTlsFile as error:
                log.error("TLS certificate not reloaded, keeping the one in use: %s", error)
                return False
            self._pending = loaded
        log.info("TLS certificate reloaded from %s", self._cert)
        return True

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's question before each new handshake: a new configuration, or None."""
        try:
            if self._signature() != self._seen:
                self.reload()
            with self._lock:
                pending, self._pending = self._pending, None
            return pending
        except Exception:  # never let a handshake fail on our account: keep what is in use
            log.exception("TLS files could not be checked; keeping the ones in use")
            return None

    def _signature(self) -> Signature:
        return tuple(_stat(path) for path in (self._cert, self._key, self._ca) if path)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert, key = _read(self._cert), _read(self._key)
        ca = _read(self._ca) if self._ca is not None else None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _check(lambda: context.load_verify_locations(cadata=cert.decode()), self._cert, "no PEM")
        if ca is not None:
            _check(lambda: context.load_verify_locations(cadata=ca.decode()), self._ca, "no PEM")
        _check(
            lambda: context.load_cert_chain(self._cert, self._key),
            self._key,
            f"not the private key of {self._cert}",
        )
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size, found.st_ino)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise BadTlsFile(f"{path}: {error.strerror}") from None


def _check(load: object, path: Path | None, what: str) -> None:
    try:
        load()  # type: ignore[operator]
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as error:
        raise BadTlsFile(f"{path}: {what} ({error})") from None
