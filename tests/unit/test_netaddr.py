"""The one host:port parser every setting and listener uses."""

from __future__ import annotations

import pytest

from license_svc.netaddr import HostPort, parse


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:50051", "127.0.0.1", 50051),
        (" localhost:0 ", "localhost", 0),
        ("[::1]:9464", "::1", 9464),
        ("0.0.0.0:65535", "0.0.0.0", 65535),
    ],
)
def test_an_address_is_read_as_its_host_and_port(text, host, port):
    assert parse(text) == HostPort(host, port)


@pytest.mark.parametrize("text", ["", "50051", ":50051", "host:", "host:65536", "host:-1", "h:5x"])
def test_anything_else_is_refused_with_the_rule(text):
    with pytest.raises(ValueError, match="host:port with a port from 0 to 65535"):
        parse(text)


def test_an_ipv6_address_is_written_back_in_brackets():
    assert str(HostPort("::1", 8080)) == "[::1]:8080"
    assert str(HostPort("127.0.0.1", 8080)) == "127.0.0.1:8080"
