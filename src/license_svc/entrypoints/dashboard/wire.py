"""The dashboard's HTTP front: one asyncio loop (a selector) reads each request whole — request
line, headers, body — within a size bound and one deadline, and only then hands it to a small
thread pool that renders the answer. A slow client costs the loop a buffer, never a thread, so
hundreds of half-sent requests do not stop the page answering (the standard library's
ThreadingHTTPServer gave each connection a thread, with no read timeout and no cap).

Every answer closes its connection (`Connection: close`): the page is one request per view, and
with no keep-alive a proxy's reused upstream connection cannot be desynchronised by a request
this parser reads differently. `Transfer-Encoding` is refused; a body needs one Content-Length.

Bounds (`Limits`): `connections` open at once — one more closes the oldest connection still
sending its request; `read_seconds` to send a whole request and `write_seconds` to take the
answer; `head_bytes` of request line and headers, `body_bytes` of body; `workers` threads render
answers and at most `queued` complete requests wait for one (more are answered 503 at once).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.client import HTTPException, HTTPMessage, parse_headers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    workers: int = 4
    queued: int = 64
    connections: int = 512
    read_seconds: float = 10.0
    write_seconds: float = 10.0
    head_bytes: int = 8_192
    body_bytes: int = 4_096


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query, as sent
    headers: HTTPMessage
    body: bytes
    client: str  # the peer's address (behind a proxy: the proxy's)


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class Refused(Exception):
    """A request this front answers itself, with this status, before any handler sees it."""

    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


class HttpFront:
    """Binds at construction (a taken port fails here, in the caller's thread); `start` runs
    the loop in a daemon thread; `stop` closes the listener and every connection."""

    def __init__(
        self, host: str, port: int, handle: Callable[[Request], Response], limits: Limits
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=1_024)
        self._handle, self.limits = handle, limits
        self._pool = concurrent.futures.ThreadPoolExecutor(limits.workers, "dashboard")
        self._reading: dict[asyncio.StreamWriter, None] = {}  # still sending; oldest first
        self._open: set[asyncio.StreamWriter] = set()
        self._waiting = 0  # complete requests queued for or held by a worker
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def waiting(self) -> int:
        """Complete requests held by a worker or queued for one."""
        return self._waiting

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; a second stop (the test's, then the service's) does nothing more."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed already: stopped
                loop.call_soon_threadsafe(stopping.set)
            self._thread.join(timeout)
        self._sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(
            self._serve, sock=self._sock, limit=self.limits.head_bytes
        )
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for writer in list(self._open):
                writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        self._reading[writer] = None
        if len(self._open) > self.limits.connections:  # make room: the longest-reading goes
            oldest = next(iter(self._reading))
            self._reading.pop(oldest)
            oldest.transport.abort()
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) else ""
        reading = _read(reader, client, self.limits)
        try:
            try:
                request = await asyncio.wait_for(reading, self.limits.read_seconds)
            except Refused as refused:
                response = _plain(refused.status)
            else:
                self._reading.pop(writer, None)
                response = await self._answer(request)
            self._reading.pop(writer, None)
            # drain() then waits for the whole answer to reach the kernel: a client that does
            # not read keeps no buffer here past write_seconds.
            writer.transport.set_write_buffer_limits(high=0)
            writer.write(_encode(response))
            await asyncio.wait_for(writer.drain(), self.limits.write_seconds)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            writer.transport.abort()  # too slow, or gone: closed, and nothing else changes
        finally:
            self._open.discard(writer)
            self._reading.pop(writer, None)
            writer.close()

    async def _answer(self, request: Request) -> Response:
        if self._waiting >= self.limits.workers + self.limits.queued:
            return _plain(HTTPStatus.SERVICE_UNAVAILABLE, [("Retry-After", "1")])
        self._waiting += 1
        try:
            assert self._loop is not None
            return await self._loop.run_in_executor(self._pool, self._safely, request)
        finally:
            self._waiting -= 1

    def _safely(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except Exception:  # the client gets a plain 500; the details go to the log only
            log.exception("dashboard: answering %s %s failed", request.method, request.target)
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR)


async def _read(reader: asyncio.StreamReader, client: str, limits: Limits) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE) from None
    line, _, rest = head.partition(b"\r\n")
    try:
        method, target, version = line.decode("ascii").split(" ")
        headers = parse_headers(io.BytesIO(rest))
    except (UnicodeDecodeError, ValueError, HTTPException):
        raise Refused(HTTPStatus.BAD_REQUEST) from None
    if version not in ("HTTP/1.0", "HTTP/1.1") or not target.startswith("/"):
        raise Refused(HTTPStatus.BAD_REQUEST)
    if headers.get("Transfer-Encoding") is not None:
        raise Refused(HTTPStatus.NOT_IMPLEMENTED)
    lengths = headers.get_all("Content-Length") or []
    if len(lengths) > 1 or (lengths and not lengths[0].strip().isdigit()):
        raise Refused(HTTPStatus.BAD_REQUEST)
    length = int(lengths[0]) if lengths else 0
    if length > limits.body_bytes:
        raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    body = await reader.readexactly(length) if length else b""
    return Request(method, target, headers, body, client)


def _plain(status: HTTPStatus, headers: list[tuple[str, str]] | None = None) -> Response:
    text = f"{status.value} {status.phrase}\n".encode()
    return Response(status, text, [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])])


def _encode(response: Response) -> bytes:
    lines = [f"HTTP/1.1 {response.status.value} {response.status.phrase}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines += [f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + response.body
