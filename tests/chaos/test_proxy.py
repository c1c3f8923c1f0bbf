"""The chaos suite's own TCP proxy: a blackhole keeps every connection, accepts new ones and
passes no byte either way until it heals; then the held bytes arrive, in order."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from bench.faults import DatabaseProxy

QUIET = 0.5  # how long a test listens for a byte that must not come (absence, not speed)


@pytest.fixture
def echo() -> Iterator[int]:
    """A TCP echo server standing in for the database; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def proxy(echo: int) -> Iterator[DatabaseProxy]:
    proxy = DatabaseProxy(f"postgresql://postgres@127.0.0.1:{echo}/db")
    yield proxy
    proxy.close()


def test_a_blackhole_passes_nothing_either_way_until_it_heals(proxy: DatabaseProxy) -> None:
    before = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    before.sendall(b"ping")
    assert _read(before, 4) == b"ping"

    proxy.blackhole()
    before.sendall(b"held")
    assert _nothing_arrives(before)
    during = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)  # accepted
    during.sendall(b"late")
    assert _nothing_arrives(during)

    proxy.heal()
    assert _read(before, 4) == b"held"
    assert _read(during, 4) == b"late"


def test_a_cut_during_a_blackhole_ends_its_connections(proxy: DatabaseProxy) -> None:
    conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    proxy.blackhole()
    conn.sendall(b"held")
    proxy.cut()
    with contextlib.suppress(ConnectionResetError):  # a reset is an end too
        assert conn.recv(1) == b""


def _read(conn: socket.socket, size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = conn.recv(size - len(got))
        assert chunk, "connection closed"
        got += chunk
    return got


def _nothing_arrives(conn: socket.socket) -> bool:
    conn.settimeout(QUIET)
    try:
        return conn.recv(1) == b"" and False
    except TimeoutError:
        return True
    finally:
        conn.settimeout(5)
