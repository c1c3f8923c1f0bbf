"""A multi-host database URL (libpq's, what an HA setup hands out) reaches every connection
the service opens whole: all its hosts and ports, and its `target_session_attrs=read-write`, so
that after a failover no connection settles on a standby still in recovery."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from license_svc import config
from license_svc.adapters.pools import CONNECT_OPTIONS

URL = (
    "postgresql://svc@db-a:5432,db-b:5433/licensing?target_session_attrs=read-write&sslmode=prefer"
)


def settings() -> config.Settings:
    return config.load(
        {
            "LICENSE_SVC_DATABASE_URL": URL,
            "LICENSE_SVC_PEPPER": "pepper-0123456789-0123456789",
            "LICENSE_SVC_TOKENS_FILE": str(config.DEV_TOKENS),
        }
    )


def test_the_library_pools_are_given_every_host_and_port() -> None:
    env = settings().eventsourcing_env()
    assert env["POSTGRES_HOST"] == "db-a,db-b"
    assert env["POSTGRES_PORT"] == "5432,5433"
    assert env["POSTGRES_DBNAME"] == "licensing"


def test_the_pooled_connections_keep_the_urls_read_write_requirement_and_other_options() -> None:
    options = conninfo_to_dict(settings().eventsourcing_env()[CONNECT_OPTIONS])
    assert options["target_session_attrs"] == "read-write"
    assert options["sslmode"] == "prefer"
    assert "host" not in options and "password" not in options
    assert "keepalives" in options  # the service's own options are still there


def test_connections_outside_the_pools_keep_the_whole_url() -> None:
    given = conninfo_to_dict(settings().conninfo())
    assert given["host"] == "db-a,db-b"
    assert given["port"] == "5432,5433"
    assert given["target_session_attrs"] == "read-write"


def test_the_logs_name_each_host_with_its_port() -> None:
    assert settings().database_label() == "db-a:5432,db-b:5433/licensing"
    assert config.database_label("postgresql://u@h1,h2:6000/x") == "h1:5432,h2:6000/x"
