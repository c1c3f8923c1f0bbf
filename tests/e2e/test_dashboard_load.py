"""The ops page under slow clients (issue 23): half-sent requests cost the server no thread, a
connection past the bound closes the oldest still sending, and a request not sent in time is
closed. Real server, real PostgreSQL; each answer is awaited with a 1-second socket timeout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from license_svc.bootstrap import Service
from license_svc.entrypoints.dashboard.board import Reads
from license_svc.entrypoints.dashboard.server import Dashboard, start_dashboard
from license_svc.entrypoints.dashboard.wire import Limits
from license_svc.startup import tokens_for
from tests.dashboard_support import Visitor
from tests.support import TOKENS

HALF_SENT = [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow",  # headers never end
    b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4000\r\n\r\ntoken=",  # body
]


def slow_clients(port: int, count: int) -> list[socket.socket]:
    clients = []
    for i in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(HALF_SENT[i % 2])
        clients.append(client)
    return clients


def closed_by_server(client: socket.socket) -> bool:
    """Whether the server closed it (an abort with unread data arrives as a reset)."""
    try:
        return client.recv(100) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def closing() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for client in opened:
        client.close()


def dashboard_with(service: Service, limits: Limits) -> Dashboard:
    reads = Reads(
        service.views, service.limiter, service.clock, service.app.recorder.max_notification_id
    )
    dashboard = Dashboard(reads, tokens_for(service.settings), "127.0.0.1:0", limits=limits)
    dashboard.start()
    service.background.append(dashboard)
    return dashboard


def test_500_slow_connections_leave_the_page_answering_within_a_second(
    service: Service, closing: list[socket.socket]
) -> None:
    dashboard = start_dashboard(service, "127.0.0.1:0")
    threads = threading.active_count()
    closing += slow_clients(dashboard.port, 500)
    visitor = Visitor(f"http://127.0.0.1:{dashboard.port}", timeout=1.0)
    assert visitor.get("/login").status == 200
    assert visitor.sign_in(TOKENS["ops"]).status == 303
    assert visitor.signed_in()
    assert threading.active_count() <= threads + 4  # the worker pool, not a thread per client


def test_one_connection_past_the_bound_closes_the_oldest_still_sending(
    service: Service, closing: list[socket.socket]
) -> None:
    dashboard = dashboard_with(service, Limits(connections=20))
    closing += slow_clients(dashboard.port, 30)
    visitor = Visitor(f"http://127.0.0.1:{dashboard.port}", timeout=1.0)
    assert visitor.get("/login").status == 200
    assert closed_by_server(closing[0])  # to make room
    closing[-1].settimeout(0.2)
    with pytest.raises(TimeoutError):  # the newest is still open
        closing[-1].recv(100)


def test_a_request_not_sent_within_the_read_deadline_is_closed(
    service: Service, closing: list[socket.socket]
) -> None:
    dashboard = dashboard_with(service, Limits(read_seconds=0.3))
    closing += slow_clients(dashboard.port, 2)
    assert all(closed_by_server(client) for client in closing)


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9_000 + b"\r\n\r\n", b"431"),
        (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", b"413"),
        (b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"501"),
        (b"POST /login HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", b"400"),
        (b"GET / HTTP/9.9\r\n\r\n", b"400"),
        (b"\x00\xff / HTTP/1.1\r\n\r\n", b"400"),
    ],
    ids=["long-headers", "long-body", "chunked", "two-lengths", "version", "binary"],
)
def test_a_request_out_of_bounds_is_answered_and_closed(
    service: Service, request_bytes: bytes, status: bytes
) -> None:
    dashboard = start_dashboard(service, "127.0.0.1:0")
    with socket.create_connection(("127.0.0.1", dashboard.port), timeout=10) as client:
        client.sendall(request_bytes)
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
    assert answer.split(b" ")[1] == status, answer[:100]
