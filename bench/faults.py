"""Faults for the chaos suite and its tests: a TCP proxy in front of PostgreSQL that can be cut.

`DatabaseProxy` listens on 127.0.0.1 and forwards every connection to the real server (TCP or
the Unix socket of an embedded one). `cut()` makes the database unreachable the way a crash
or a partition looks to a client — established connections are reset and new ones refused —
without touching the server itself (the machine's PostgreSQL is shared: never stop it).
`restore()` listens again on the same port.

`blackhole()` is the other partition, the silent one: every connection stays open, new ones are
accepted, and no byte passes either way (what a dropped route or a hung middlebox looks like to
a client; a peer notices only through its own timeouts). The proxy stops reading, so the
sockets' buffers fill and the senders' windows close; it holds at most one read (64 KiB) per
direction. `heal()` passes bytes again, the held ones first, as TCP would after a partition.
Only a peer's kernel-level keepalives differ from a real partition: the proxy's kernel answers
them, so a peer sees a live socket that never speaks.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class DatabaseProxy:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        params = conninfo_to_dict(database_url)
        host = str(params.get("host") or "127.0.0.1")
        port = int(params.get("port") or 5432)
        self._unix = Path(host) / f".s.PGSQL.{port}" if host.startswith("/") else None
        self._upstream = (host, port)
        self._lock = threading.Lock()
        self._pairs: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._passing = threading.Event()  # cleared while blackholed
        self._passing.set()
        self.port = 0
        self.restore()

    @property
    def url(self) -> str:
        """The database URL through the proxy."""
        return make_conninfo(self.database_url, host="127.0.0.1", port=str(self.port))

    def restore(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in pairs:
            _reset(sock)

    def blackhole(self) -> None:
        """Keep every connection (and accept new ones) but pass no byte either way."""
        self._passing.clear()

    def heal(self) -> None:
        """End a blackhole: bytes pass again, the held ones first."""
        self._passing.set()

    @property
    def blackholed(self) -> bool:
        return not self._passing.is_set()

    def close(self) -> None:
        self.cut()
        self.heal()  # pumps holding bytes see their sockets closed and end

    def _connect_upstream(self) -> socket.socket:
        if self._unix is not None:
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(os.fspath(self._unix))
        else:
            upstream = socket.create_connection(self._upstream, timeout=5)
            upstream.settimeout(None)
        return upstream

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = self._connect_upstream()
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _reset(client)
                    _reset(upstream)
                    return
                self._pairs.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                pump = threading.Thread(
                    target=_pump, args=(source, target, self._passing), daemon=True
                )
                pump.start()


def _pump(source: socket.socket, target: socket.socket, passing: threading.Event) -> None:
    try:
        while _wait(passing, source) and (data := source.recv(65536)):
            if not _wait(passing, source):  # blackholed while this read was waiting: hold it
                break
            target.sendall(data)
    except OSError:
        pass
    _reset(source)
    _reset(target)


def _wait(passing: threading.Event, source: socket.socket) -> bool:
    """Wait until bytes may pass; False once `source` was closed meanwhile (a cut)."""
    while not passing.wait(0.2):
        if source.fileno() == -1:
            return False
    return source.fileno() != -1


def _reset(sock: socket.socket) -> None:
    """End a connection now: shutdown wakes the pump blocked on it (a bare close from another
    thread would not), and the peer sees the connection end as it does when a server dies."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
