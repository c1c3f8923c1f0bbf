"""What a command checks before it starts: the token file, its addresses, the database.

Each check fails with one exception whose message names the setting and the problem:
`ConfigError` for a setting that is wrong (the CLI exits 2), `DependencyDown` for a dependency
that stayed unreachable for the start-up wait (exit 1). The CLI prints either as one line.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from eventsourcing.persistence import InterfaceError as LibraryInterfaceError
from eventsourcing.persistence import OperationalError as LibraryOperationalError

from license_svc import netaddr
from license_svc.access.auth import TokenTable
from license_svc.config import DEV_TOKENS, PREFIX, ConfigError, Settings
from license_svc.tokens.keys import KeyFileError, KeyRing

T = TypeVar("T")
LOST = (psycopg.OperationalError, LibraryOperationalError, LibraryInterfaceError)
log = logging.getLogger("license_svc.startup")

# SQLSTATE classes that retrying will not fix: a wrong password, a missing database or role.
FATAL_SQLSTATES = ("28", "3D")
FATAL_TEXT = ("does not exist", "password authentication failed", "no pg_hba.conf entry")


class DependencyDown(Exception):
    """A dependency stayed unreachable for the whole start-up wait."""


def one_line(error: BaseException) -> str:
    """An exception's message on one line (libpq's span several)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:500]


def tokens_for(settings: Settings) -> TokenTable:
    """The token table the settings name; in development only, the packaged dev tokens."""
    path = settings.tokens_file
    if path is None:
        if not settings.dev:
            raise ConfigError(f"{PREFIX}TOKENS_FILE is not set")
        log.warning(
            "%sTOKENS_FILE is unset: using the DEVELOPMENT tokens shipped with the package"
            " (the content of deploy/dev/tokens.json), never for production",
            PREFIX,
        )
        path = DEV_TOKENS
    setting = f"{PREFIX}TOKENS_FILE"
    try:
        entries = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"{setting}: cannot read {path}: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{setting}: {path} is not valid JSON ({one_line(error)})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(
            f"{setting}: {path} must hold a JSON list of {{token, role, reseller_id?}} objects"
        )
    try:
        table = TokenTable.from_file(path)
    except (ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"{setting}: {one_line(error)}") from None
    if not table.size:
        raise ConfigError(f"{setting}: {path} holds no tokens")
    return table


def signing_keys_for(settings: Settings, required: bool = True) -> KeyRing | None:
    """The allowance tokens' keys the settings name, loaded and checked (a bad file is a setting
    error, said in one line without the file's content). `serve` requires them; a server built
    without them (tests, the bench's in-process runs) answers GetAllowanceToken UNIMPLEMENTED."""
    if settings.signing_key_file is None:
        if required:
            raise ConfigError(
                f"{PREFIX}SIGNING_KEY_FILE is not set: `serve` signs allowance tokens with it;"
                " only `license-svc run` makes a development key"
            )
        return None
    try:
        return KeyRing(settings.signing_key_file, settings.retired_signing_keys)
    except KeyFileError as error:
        raise ConfigError(str(error)) from None


def check_address(address: str, setting: str, reuse_port: bool = False) -> None:
    """Refuse an address this process cannot listen on, before gRPC tries (its C core logs
    several lines of its own and, for some errors, binds another port instead). With
    `reuse_port` (LICENSE_SVC_SO_REUSEPORT) a port shared by sibling servers is no error."""
    host, port = (parsed := netaddr.parse(address)).host, parsed.port
    if port == 0:
        return  # any free port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ConfigError(f"{setting}: cannot resolve {host!r}: {error.strerror}") from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            # As gRPC binds: a TIME_WAIT connection on the port does not block a listener.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                raise ConfigError(
                    f"{setting}: cannot listen on {address}: {error.strerror}"
                ) from None


def check_loopback(address: str, setting: str) -> None:
    """The development tokens are published (deploy/dev/tokens.json): a process that accepts
    them answers on loopback only. Every address the host resolves to must be a loopback one."""
    host = address.rpartition(":")[0].strip("[]")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ConfigError(f"{setting}: cannot resolve {host!r}: {error.strerror}") from None
    if not all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos):
        raise ConfigError(
            f"{setting}: `run` with the development tokens listens on loopback only, not"
            f" {address}; set {PREFIX}TOKENS_FILE to tokens of your own to serve other addresses"
        )


def start_when_reachable(settings: Settings, build: Callable[[Settings], T]) -> T:
    """`build(settings)` once the database answers. The database may also go away while the
    service is being built (a restart during an outage: the first `SELECT 1` answered, a later
    statement of the build did not); start-up then waits for it again, all within the one
    `startup_wait_seconds`, instead of exiting on the first lost connection."""
    deadline = time.monotonic() + settings.startup_wait_seconds
    while True:
        wait_for_database(settings, deadline)
        try:
            return build(settings)
        except Exception as error:
            if not connection_lost(error):
                raise
            if time.monotonic() >= deadline:
                raise DependencyDown(
                    f"{PREFIX}DATABASE_URL: the database at {settings.database_label()} went away"
                    f" during start-up and was not back within {settings.startup_wait_seconds:g}s"
                    f" ({PREFIX}STARTUP_WAIT_SECONDS): {one_line(error)}"
                ) from None
            log.warning(
                "database %s went away during start-up (%s); waiting for it again",
                settings.database_label(),
                one_line(error),
            )


def in_chain(error: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of `kinds` in `error`'s chain of causes (the library re-raises its
    own types from psycopg's)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def connection_lost(error: BaseException) -> bool:
    """A lost or refused connection anywhere in the chain, not a setting the database refused
    (those are not retried)."""
    found = in_chain(error, LOST)
    return found is not None and not (isinstance(found, psycopg.Error) and _fatal(found))


def wait_for_database(settings: Settings, deadline: float | None = None) -> None:
    """Connect once, retrying until `deadline` (else for `startup_wait_seconds`) with a line
    per attempt; a wrong password or a missing database is a setting error and is not retried."""
    label = settings.database_label()
    if deadline is None:
        deadline = time.monotonic() + settings.startup_wait_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.Error as error:
            reason = one_line(error)
            if _fatal(error):
                raise ConfigError(f"{PREFIX}DATABASE_URL ({label}): {reason}") from None
        left = deadline - time.monotonic()
        if left <= 0:
            raise DependencyDown(
                f"{PREFIX}DATABASE_URL: the database at {label} is unreachable after"
                f" {attempt} attempt(s) in {settings.startup_wait_seconds:g}s"
                f" ({PREFIX}STARTUP_WAIT_SECONDS): {reason}"
            )
        log.warning(
            "database %s not reachable (attempt %d, %.0fs left): %s", label, attempt, left, reason
        )
        time.sleep(min(1.0, left))


def _fatal(error: psycopg.Error) -> bool:
    state = error.sqlstate or ""
    return state.startswith(FATAL_SQLSTATES) or any(t in str(error) for t in FATAL_TEXT)


def settle_memory(young_threshold: int) -> None:
    """Once the server is up: what start-up built (modules, the wiring, the pools) is moved out
    of the cyclic collector's sight (`gc.freeze`), and the youngest generation is collected every
    `young_threshold` allocations instead of every 700, so full collections come far less often.

    A full collection stops the process for as long as it takes to scan the live heap: with a
    thousand open streams, 20–45 ms at Python's settings, every few seconds under a stream of
    changes (measured in `make bench`, stage WatchFanout: the p99 of a thousand watchers' updates
    went from 76–87 ms to 40–47 ms, and the server's CPU per delivered message from ~63 to ~53
    µs). `python_gc_collections_total` on /metrics shows how often each generation runs."""
    if young_threshold <= 0:
        return
    gc.collect()  # start-up's garbage is not frozen with the rest
    gc.freeze()
    gc.set_threshold(young_threshold, 20, 10)
