"""Every connection the service opens carries the hardened options (connect timeout, TCP
keepalives and user timeout, the server-side statement timeout): the streams' log reader and
the log follower too, so a silent partition cannot stall live streams for hours."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

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
