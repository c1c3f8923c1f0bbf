"""What stands between another site and the page's POSTs, and between a guesser and the tokens.

Every POST must pass two checks, each enough alone against a browser on another site:
- the browser's own word: `Sec-Fetch-Site`, when sent, is `same-origin`, and `Origin` is sent
  and names this page (`https://` + the Host header; `http://` too on a loopback host or a
  plain-HTTP `run`). `Origin: null` (a sandboxed frame, a data: URL) names nothing: refused.
- a form token: the sign-in form carries an HMAC of the pre-session cookie, the sign-out form an
  HMAC of the session cookie, under a key this process draws at start (a restart voids open
  forms). Another site can read neither cookie nor form, so it cannot send a matching pair.

`SignInLimiter` counts failed token checks (the form's and the `Authorization` header's alike):
`per_address` failures in `window` refuse that address's token checks until the oldest leaves
the window; `overall` failures in `window` from everyone refuse every token check (sessions
already open keep working). It remembers `addresses` addresses at most (the least recent go
first), logs a line when an address or everyone is first held back, and counts refusals.
Behind a proxy every client has the proxy's address: then the overall bound is the one that acts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.client import HTTPMessage

log = logging.getLogger(__name__)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class FormTokens:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def token(self, purpose: str, cookie: str) -> str:
        mac = hmac.new(self._key, f"{purpose}\0{cookie}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def check(self, purpose: str, cookie: str | None, given: str) -> bool:
        if not cookie or not given:
            return False
        return hmac.compare_digest(self.token(purpose, cookie).encode(), given.encode())


def same_origin(headers: HTTPMessage, plain_http: bool) -> bool:
    """Whether the browser says this request comes from the page itself."""
    sites = headers.get_all("Sec-Fetch-Site") or []
    if sites and sites != ["same-origin"]:
        return False
    origins, hosts = headers.get_all("Origin") or [], headers.get_all("Host") or []
    if len(origins) != 1 or len(hosts) != 1 or not hosts[0]:
        return False
    host = hosts[0].strip().lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    schemes = ["https"]
    if plain_http or name in LOOPBACK_HOSTS:
        schemes.append("http")
    return origins[0].strip().lower() in {f"{scheme}://{host}" for scheme in schemes}


@dataclass(frozen=True)
class LimiterBounds:
    per_address: int = 10
    overall: int = 300
    window: timedelta = timedelta(minutes=10)
    addresses: int = 10_000


class SignInLimiter:
    def __init__(self, clock: Callable[[], datetime], bounds: LimiterBounds = LimiterBounds()):
        self.bounds = bounds
        self.refused = 0  # token checks refused by this limiter since start
        self._clock = clock
        self._lock = threading.Lock()
        self._by_address: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._overall: deque[datetime] = deque(maxlen=bounds.overall)

    def wait(self, address: str) -> timedelta | None:
        """How long this address must wait before its next token check, or None: go ahead."""
        now = self._clock()
        start = now - self.bounds.window
        with self._lock:
            waits = [
                failures[0] - start
                for failures, bound in (
                    (self._overall, self.bounds.overall),
                    (self._by_address.get(address), self.bounds.per_address),
                )
                if failures is not None and len(failures) >= bound and failures[0] > start
            ]
            if not waits:
                return None
            self.refused += 1
            return max(waits)

    def failed(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            failures = self._by_address.pop(address, None)
            if failures is None:
                failures = deque(maxlen=self.bounds.per_address)
            self._by_address[address] = failures  # now the most recent
            while len(self._by_address) > self.bounds.addresses:
                self._by_address.popitem(last=False)
            failures.append(now)
            self._overall.append(now)
            if len(failures) == self.bounds.per_address:
                log.warning(
                    "dashboard sign-in: %d failed token checks from %s within %s: held back",
                    len(failures),
                    address,
                    self.bounds.window,
                )
            if (
                len(self._overall) == self.bounds.overall
                and self._overall[0] > now - self.bounds.window
            ):
                log.warning(
                    "dashboard sign-in: %d failed token checks within %s from all addresses:"
                    " every token check held back",
                    len(self._overall),
                    self.bounds.window,
                )
