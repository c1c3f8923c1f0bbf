"""A real HTTP receiver for webhook tests: `http.server` on 127.0.0.1 in a thread, answering
from a script, and checking every request's signature with its own implementation of the
Standard Webhooks scheme (written here from the specification, not the service's code):

    signed content  = "{webhook-id}.{webhook-timestamp}.{raw body}"
    signature       = base64(HMAC-SHA256(key = base64decode(secret without "whsec_"), content))
    webhook-signature holds space-separated "v1,<signature>" entries; one must match.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = -1  # a scripted answer: never answer (until the receiver stops)
MAX_HANG_SECONDS = 120.0


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks verification, by hand."""
    message_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not message_id or not stamp.isdigit():
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{message_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for entry in headers.get("webhook-signature", "").split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


@dataclass(frozen=True)
class Received:
    webhook_id: str
    timestamp: int
    body: dict[str, Any]
    verified: bool
    host: str

    @property
    def type(self) -> str:
        return str(self.body["type"])

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.body["data"])


class Receiver:
    """`answers` are the statuses of the first requests (HANG: never answer); after them,
    `then` (200). `secret` is set once the endpoint is created."""

    def __init__(
        self,
        answers: list[int] | None = None,
        then: int = 200,
        port: int = 0,
        path: str = "",
    ) -> None:
        # A path of its own: a delivery left pending by an earlier test, whose receiver had this
        # port before, is answered 404 and not counted.
        self.path = path or f"/hooks/{uuid.uuid4().hex}"
        self.secret = ""
        self.answers = list(answers or [])
        self.then = then
        self.retry_after = ""  # sent with every answer that is not a 2xx, when set
        self.body = b"ok"  # the body of every answer
        self.ids: list[str] = []  # the webhook-id of every request, answered or not
        self.received: list[Received] = []
        self.requests = 0
        self.hanging = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("content-length") or 0))
        if request.path != self.path:
            request.send_response(404)
            request.send_header("content-length", "0")
            request.end_headers()
            return
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.requests += 1
            self.ids.append(headers.get("webhook-id", ""))
            answer = self.answers.pop(0) if self.answers else self.then
            if answer == HANG:
                self.hanging += 1
                self._changed.notify_all()
        if answer == HANG:
            self._stopping.wait(MAX_HANG_SECONDS)
            return
        status = answer if answer else 200
        request.send_response(status)
        request.send_header("content-length", str(len(self.body)))
        if self.retry_after and not 200 <= status < 300:
            request.send_header("retry-after", self.retry_after)
        request.end_headers()
        with contextlib.suppress(OSError):  # the sender stops reading after a bounded part
            request.wfile.write(self.body)
        if 200 <= status < 300:
            found = Received(
                headers.get("webhook-id", ""),
                int(headers.get("webhook-timestamp", "0") or 0),
                json.loads(body),
                verify(self.secret, headers, body),
                headers.get("host", ""),
            )
            with self._lock:
                self.received.append(found)
                self._changed.notify_all()

    def wait_for(self, done: Callable[[Receiver], bool], timeout: float = 60.0) -> None:
        """Until `done(self)` holds (checked at every request), or fail after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not done(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"receiver: condition not met; got {self.received}")
                self._changed.wait(min(left, 0.5))

    def of_type(self, message_type: str) -> list[Received]:
        return [r for r in self.received if r.type == message_type]

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
