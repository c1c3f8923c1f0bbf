"""The watchdog that bounds a database round trip: a wait on a socket that outlives the bound is
woken by the socket's end (what psycopg then reports as a lost connection), and a round trip
that finished in time is left alone."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from license_svc.adapters.watchdog import Watchdog

BOUND = 0.2
NEVER_HANGS = 30.0  # a bound against hanging, not a speed target


class Conn:
    """What the watchdog needs of a psycopg connection: its socket's descriptor."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    yield ours, peer
    ours.close()
    peer.close()


def test_a_wait_that_outlives_the_bound_is_ended(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _silent_peer = pair
    watchdog = Watchdog(BOUND)
    got: list[bytes] = []

    def wait_for_an_answer() -> None:
        with watchdog.watch(Conn(ours)):
            got.append(ours.recv(1))  # the peer never answers

    thread = threading.Thread(target=wait_for_an_answer, daemon=True)
    thread.start()
    thread.join(NEVER_HANGS)
    assert not thread.is_alive()
    assert got == [b""]  # the end of the connection, as after a server that went away
    assert watchdog.ended == 1


def test_a_round_trip_done_in_time_is_left_alone(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    watchdog = Watchdog(NEVER_HANGS)
    for _ in range(3):
        with watchdog.watch(Conn(ours)):
            peer.sendall(b"x")
            assert ours.recv(1) == b"x"
    peer.sendall(b"y")
    assert ours.recv(1) == b"y"  # still open
    assert watchdog.ended == 0
