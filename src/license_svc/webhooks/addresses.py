"""Which URLs a webhook may call (rules §14), checked when an endpoint is created and again at
every send.

Only `https://` to public addresses, unless the private switch is on (development). A name is
resolved once per send, every address it resolves to must be public, and the request then
connects to the address that was checked (the name travels in the Host header and TLS SNI):
a name that answers a public address to the check and a private one to the connection (DNS
rebinding) cannot steer a request inside. Redirects are never followed (the sender's client).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2048
Resolve = Callable[[str, int], list[str]]


class UrlRefused(Exception):
    """The URL may not be called; the message says why, in one sentence."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # as written (a name, or an address without brackets)
    port: int
    path: str  # path and query, at least "/"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: str) -> str:
        """The URL with the checked address in place of the name."""
        host = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse(url: str, allow_private: bool) -> Target:
    if len(url) > MAX_URL:
        raise UrlRefused(f"must be at most {MAX_URL} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url) or not url.isascii():
        raise UrlRefused("must be an ASCII URL without spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UrlRefused(f"is not a URL ({error})") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise UrlRefused("must start with https://")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("must not hold a user name or password")
    if not parts.hostname:
        raise UrlRefused("must name a host")
    if parts.fragment:
        raise UrlRefused("must not hold a fragment (#…)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return Target(url, parts.scheme, parts.hostname, port or default, path)


def system_resolve(host: str, port: int) -> list[str]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as error:
        raise UrlRefused(f"host {host!r} does not resolve ({error})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def checked_address(target: Target, allow_private: bool, resolve: Resolve = system_resolve) -> str:
    """The one address to connect to, after checking every address the host resolves to."""
    try:
        addresses = [str(ipaddress.ip_address(target.host))]
    except ValueError:
        addresses = resolve(target.host, target.port)
    if not addresses:
        raise UrlRefused(f"host {target.host!r} does not resolve")
    if not allow_private:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise UrlRefused(
                f"host {target.host!r} resolves to {private[0]}, which is not a public address"
            )
    return addresses[0]


def check(url: str, allow_private: bool, resolve: Resolve = system_resolve) -> Target:
    """What CreateWebhookEndpoint asks: may this URL be called now?"""
    target = parse(url, allow_private)
    checked_address(target, allow_private, resolve)
    return target
