"""`license-svc migrate`: create or upgrade the schema as its owner, and grant the other roles.

license-svc migrate [--grant-service ROLE] [--grant-readonly ROLE]

Connects with LICENSE_SVC_DATABASE_URL as the schema's owner (no pepper, no token table),
creates every table, index and function of this build as the service's start-up would, records
the schema's version, and grants the service role (`serve`, `project`, `expire`: rows, no DDL)
and the read-only role (the dashboard) their rights; the statements run are printed. The roles
themselves (and their passwords) are the database administrator's: `migrate` creates none.
"""

from __future__ import annotations

import argparse
import logging

import psycopg

from license_svc import bootstrap, config, startup
from license_svc.adapters import schema

log = logging.getLogger("license_svc")

SMALL_POOL: dict[str, int] = {"pool_size": 1, "pool_max_overflow": 1}


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = config.load(purpose="tool").with_(**SMALL_POOL)
    startup.wait_for_database(settings)
    name = schema.schema_of(settings.eventsourcing_env())
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        if not schema.may_change(conn, name):
            raise config.ConfigError(
                f"{config.PREFIX}DATABASE_URL ({settings.database_label()}): this role may not"
                f" change the schema {name!r}: run `license-svc migrate` as its owner"
            )
        before = schema.recorded_version(conn, name)
    bootstrap.build(settings).close()  # as an owner, start-up creates and upgrades it all
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        with conn.transaction(), conn.cursor() as curs:
            schema.record(curs, name)
            for statement in schema.grants(name, args.grant_service, args.grant_readonly):
                curs.execute(statement)
                print(statement.as_string(conn) + ";")
        for role in filter(None, (args.grant_service, args.grant_readonly)):
            if schema.may_create(conn, role, name):
                log.warning(
                    "role %s may still create objects in schema %s (a grant to it or to PUBLIC):"
                    " REVOKE CREATE ON SCHEMA %s FROM PUBLIC, %s",
                    role,
                    name,
                    name,
                    role,
                )
    done = "is current" if before == schema.SCHEMA_VERSION else f"was at {before or 'none'}"
    print(
        f"schema {name!r} of {settings.database_label()}: version {schema.SCHEMA_VERSION} ({done})"
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = commands.add_parser(
        "migrate", help="create or upgrade the schema as its owner; grant the other roles"
    )
    migrate.add_argument(
        "--grant-service",
        default="",
        metavar="ROLE",
        help="the role of serve, project and expire: read and write rows, no DDL",
    )
    migrate.add_argument(
        "--grant-readonly", default="", metavar="ROLE", help="the dashboard's role: read only"
    )
    migrate.set_defaults(func=cmd_migrate)
