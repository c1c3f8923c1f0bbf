"""The one parser of `host:port` listen addresses (settings, start-up checks, every listener).

`host` is a name, an IPv4 address or a bracketed IPv6 address (`[::1]:50051`); the port is
0 to 65535 (0: any free port, which the listener reports once bound).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostPort:
    host: str  # without brackets
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse(text: str) -> HostPort:
    """`text` as a HostPort, or ValueError saying what is wrong with it."""
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be host:port with a port from 0 to 65535, got {text!r}")
    return HostPort(host.removeprefix("[").removesuffix("]"), int(port))
