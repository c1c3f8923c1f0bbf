"""One POST of a webhook and what came of it.

The request goes to the address that was checked (`addresses.py`), with the endpoint's name in
the Host header and in TLS SNI (so the certificate is checked against the name); no redirect is
followed, no proxy taken from the environment, no connection kept alive (a kept connection was
checked for another name). Connect, write and read each wait at most the client's timeout. Of
the answer, MAX_BODY bytes at most are read, and kept (500 characters) only when it is not a 2xx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .addresses import Target

MAX_BODY = 4_096
MAX_RETRY_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Outcome:
    status: int  # 0: no HTTP answer
    latency_ms: int
    error: str | None = None
    retry_after: timedelta | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


def post(
    client: httpx.Client,
    target: Target,
    address: str,
    headers: dict[str, str],
    body: bytes,
    now: datetime,
    took: Callable[[], int],
) -> Outcome:
    """POST to the checked address, the name in Host and SNI; never a redirect followed."""
    headers = {**headers, "host": target.authority}
    extensions: dict[str, Any] = {}
    if target.scheme == "https":
        extensions["sni_hostname"] = target.host
    request = client.build_request(
        "POST",
        target.url_for(address),
        content=body,
        headers=headers,
        extensions=extensions,
    )
    try:
        response = client.send(request, stream=True)
        try:
            answer = _read_some(response)
        finally:
            response.close()
    except httpx.TimeoutException as error:
        return Outcome(0, took(), f"timed out ({type(error).__name__})")
    except httpx.HTTPError as error:
        return Outcome(0, took(), f"{type(error).__name__}: {error}"[:500])
    status = response.status_code
    error_text = None if 200 <= status < 300 else f"HTTP {status}: {_printable(answer)}"
    retry_after = _retry_after(response.headers.get("retry-after"), now)
    return Outcome(status, took(), error_text, retry_after)


def new_client(timeout: float) -> httpx.Client:
    """No redirects; no connection kept alive (a kept connection was checked for another name's
    address and SNI); no proxy from the environment."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
    )


def _read_some(response: httpx.Response) -> bytes:
    got = b""
    for chunk in response.iter_raw(1024):
        got += chunk
        if len(got) >= MAX_BODY:
            break
    return got[:MAX_BODY]


def _printable(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else " " for c in text)[:500]


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=min(int(value), int(MAX_RETRY_AFTER.total_seconds())))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - now)
