"""Every connection the service opens carries the hardened options (connect timeout, TCP
keepalives and user timeout, the server-side statement timeout): the streams' log reader and
the log follower too, so a silent partition cannot stall live streams for hours."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from license_svc import config
from license_svc.bootstrap import Service


def test_the_streams_log_reader_and_follower_connect_with_the_hardened_options(
    service: Service,
) -> None:
    expected = service.settings.connect_options()
    given = conninfo_to_dict(service.feed.reader.names.conninfo)
    for option in ("keepalives", "keepalives_idle", "tcp_user_timeout", "options"):
        assert str(given.get(option)) == str(expected[option]), option
    with service.feed.reader._conn().connection() as conn:
        row = conn.execute("SHOW statement_timeout").fetchone()
    assert row is not None and row[0] == f"{int(service.settings.statement_timeout)}s"


def test_the_server_end_of_every_connection_drops_a_silent_client_within_the_keepalive_bound(
    service: Service,
) -> None:
    # PostgreSQL notices a client that stopped answering only through its own socket: the
    # service sets the server's keepalives and user timeout per session, so a replica cut off
    # while holding the events table's lock loses it in seconds whatever the server's config.
    settings = service.settings
    wanted = {
        "tcp_keepalives_idle": f"{config.KEEPALIVE_IDLE}",
        "tcp_keepalives_interval": f"{config.KEEPALIVE_INTERVAL}",
        "tcp_keepalives_count": f"{config.KEEPALIVE_COUNT}",
        "tcp_user_timeout": f"{int(settings.statement_timeout * 1000)}",
    }
    with service.feed.reader._conn().connection() as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone() for name in wanted}
    if conn.info.host.startswith("/"):
        pytest.skip("a Unix socket has no TCP end to configure")
    for name, value in wanted.items():
        row = shown[name]
        assert row is not None and row[0].removesuffix("ms").removesuffix("s") == value, name
