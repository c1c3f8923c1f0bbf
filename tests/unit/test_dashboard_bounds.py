"""The dashboard's stated bounds, each at its edge (injected clock): sessions per principal and by
kind, where no principal's sign-in ends another's; the sign-in limiter's overall bound across
addresses and the number of addresses it remembers; the HTTP front's workers and queue."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http import HTTPStatus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from license_svc.access.auth import Principal, Role
from license_svc.entrypoints.dashboard.guard import LimiterBounds, SignInLimiter
from license_svc.entrypoints.dashboard.sessions import Bounds, Full, Sessions
from license_svc.entrypoints.dashboard.wire import HttpFront, Limits, Request, Response
from tests.support import FakeClock
from tests.views_support import wait_until

OPS = Principal(Role.OPS, name="ops")
ACME = Principal(Role.RESELLER, "acme", "reseller:acme")


def reseller(n: int) -> Principal:
    return Principal(Role.RESELLER, f"r{n}", f"reseller:r{n}")


def test_a_full_reseller_room_refuses_the_next_reseller_and_ends_no_one_elses() -> None:
    sessions = Sessions(FakeClock(), Bounds(per_principal=2, others=4, ops=2))
    for n in range(4):
        sessions.open(f"s{n}", reseller(n), b"d")
    with pytest.raises(Full):
        sessions.open("late", reseller(9), b"d")
    assert all(sessions.find(f"s{n}") for n in range(4))
    sessions.open("ops-1", OPS, b"d")  # ops have a room of their own
    sessions.open("ops-2", OPS, b"d")
    assert sessions.find("ops-1") and sessions.find("ops-2")


def test_a_principal_at_its_cap_ends_only_its_own_oldest_session() -> None:
    sessions = Sessions(FakeClock(), Bounds(per_principal=3))
    sessions.open("ops", OPS, b"d")
    for n in range(5):
        sessions.open(f"acme-{n}", ACME, b"d")
    assert sessions.find("ops")
    assert [bool(sessions.find(f"acme-{n}")) for n in range(5)] == [False] * 2 + [True] * 3
    assert len(sessions) == 4


def test_expired_sessions_make_room_in_a_full_store() -> None:
    clock = FakeClock()
    sessions = Sessions(clock, Bounds(others=1))
    sessions.open("old", ACME, b"d")
    clock.advance(minutes=30)
    sessions.open("new", reseller(2), b"d")
    assert sessions.find("new") and not sessions.find("old") and len(sessions) == 1


def test_failures_from_many_addresses_hold_back_every_address() -> None:
    clock = FakeClock()
    limiter = SignInLimiter(clock, LimiterBounds(per_address=3, overall=5))
    for n in range(5):
        assert limiter.wait(f"10.0.0.{n}") is None
        limiter.failed(f"10.0.0.{n}")
    assert limiter.wait("10.9.9.9") == timedelta(minutes=10)
    clock.advance(minutes=10)
    assert limiter.wait("10.9.9.9") is None
    assert limiter.refused == 1


def test_the_limiter_remembers_a_bounded_number_of_addresses_least_recent_first() -> None:
    limiter = SignInLimiter(FakeClock(), LimiterBounds(per_address=2, overall=1_000, addresses=3))
    for address in ("a", "a", "b", "c", "d"):
        limiter.failed(address)
    assert limiter.wait("a") is None  # forgotten: 'd' made a fourth
    for address in ("b", "c", "d"):
        limiter.failed(address)
    assert all(limiter.wait(address) for address in ("b", "c", "d"))


def test_requests_past_the_workers_and_the_queue_are_answered_503_at_once() -> None:
    release = threading.Event()

    def handle(request: Request) -> Response:
        release.wait(10)
        return Response(HTTPStatus.OK, b"done")

    front = HttpFront("127.0.0.1", 0, handle, Limits(workers=1, queued=1))
    front.start()
    try:
        clients = [socket.create_connection(front.address, timeout=10) for _ in range(3)]
        for client in clients[:2]:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: front.waiting == 2, "one request held by the worker, one queued")
        clients[2].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(clients[2]).startswith(b"HTTP/1.1 503 ")
        release.set()
        assert [read_all(c).split(b"\r\n")[0] for c in clients[:2]] == [b"HTTP/1.1 200 OK"] * 2
    finally:
        release.set()
        front.stop()


def read_all(client: socket.socket) -> bytes:
    answer = b""
    while chunk := client.recv(4096):
        answer += chunk
    client.close()
    return answer


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda line, head, body: line + b"\r\n" + head + b"\r\n\r\n" + body,
            st.sampled_from([b"GET / HTTP/1.1", b"POST /login HTTP/1.0", b"GET  / HTTP/1.1"]),
            st.binary(max_size=200),
            st.binary(max_size=100),
        ),
    )
)
def test_any_bytes_get_an_answer_or_a_close_and_never_a_server_error(
    echo_front: HttpFront, sent: bytes
) -> None:
    with socket.create_connection(echo_front.address, timeout=10) as client:
        client.sendall(sent)
        client.shutdown(socket.SHUT_WR)
        try:
            answer = read_all(client)
        except ConnectionResetError:
            answer = b""
    if answer:
        status = int(answer.split(b" ")[1])
        assert answer.startswith(b"HTTP/1.1 ") and status in (200, 400, 413, 431, 501), answer


@pytest.fixture(scope="module")
def echo_front() -> Iterator[HttpFront]:
    front = HttpFront("127.0.0.1", 0, lambda r: Response(HTTPStatus.OK, r.body), Limits())
    front.start()
    yield front
    front.stop()
