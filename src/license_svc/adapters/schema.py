"""Who may change the schema, and whether it is the one this build needs.

Three database roles in production (README, "Database roles"): the owner, which
`license-svc migrate` connects as to create and upgrade the schema; the service role of
`serve`, `project` and `expire`, which reads and writes rows but may run no DDL; and the
read-only role of the dashboard. `migrate` records SCHEMA_VERSION in `license_svc_store` and,
when asked, grants the other two their rights (`grants`).

A process decides at start-up, on the role it connected as: a role that may create in the
store's schema (development's `run`, a single-role set-up, the test suite) creates and upgrades
the schema as it starts; one that may not runs no DDL at all — PostgreSQL refuses even a
`CREATE TABLE IF NOT EXISTS` of a table that exists to a role without CREATE on the schema — and
instead checks that the recorded version is this build's, else refuses to start, naming
`migrate`. So bump SCHEMA_VERSION with every new table, column, index or function.
"""

from __future__ import annotations

from typing import Any

from psycopg.sql import SQL, Composed, Identifier

from license_svc.config import PREFIX, ConfigError

SCHEMA_VERSION = 3  # 2: the webhook tables; 3: seat_leases and license_svc_seat_state
TABLE = "license_svc_store"  # name → value facts of the store (also the pepper's fingerprint)
VERSION = "schema_version"


def schema_of(env: dict[str, str]) -> str:
    """The schema the store lives in (the library's POSTGRES_SCHEMA, else `public`)."""
    return env.get("POSTGRES_SCHEMA") or "public"


def create_table(curs: Any, schema: str) -> None:
    curs.execute(
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, value text NOT NULL,"
            " recorded_at timestamptz NOT NULL DEFAULT now())"
        ).format(Identifier(schema, TABLE))
    )


def may_change(conn: Any, schema: str) -> bool:
    """Whether this connection's role may create objects in `schema` (so run the DDL)."""
    # May create in the schema (or, with no schema yet, create it), and owns the store's table
    # if it exists (CREATE INDEX, ALTER TABLE need the owner).
    row = conn.execute(
        "SELECT CASE WHEN to_regnamespace(%s) IS NULL"
        "  THEN has_database_privilege(current_database(), 'CREATE')"
        "  ELSE has_schema_privilege(current_user, %s, 'CREATE') END"
        " AND (to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NULL"
        "      OR pg_has_role(current_user, (SELECT relowner FROM pg_class"
        "         WHERE oid = to_regclass(format('%%I.%%I', %s::text, %s::text))), 'USAGE'))",
        (schema, schema, schema, TABLE, schema, TABLE),
    ).fetchone()
    return bool(_first(row))


def recorded_version(conn: Any, schema: str) -> int:
    """The version `migrate` recorded; 0 when the schema was never migrated."""
    found = conn.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL", (schema, TABLE)
    ).fetchone()
    if not _first(found):
        return 0
    row = conn.execute(
        SQL("SELECT value FROM {} WHERE name = %s").format(Identifier(schema, TABLE)), (VERSION,)
    ).fetchone()
    return int(_first(row)) if row else 0


def require_current(conn: Any, schema: str, label: str) -> None:
    """For a role that may not change the schema: refuse one this build cannot run on."""
    version = recorded_version(conn, schema)
    if version < SCHEMA_VERSION:
        found = f"at version {version}" if version else "not migrated"
        raise ConfigError(
            f"{PREFIX}DATABASE_URL ({label}): the schema {schema!r} is {found} and this build"
            f" needs version {SCHEMA_VERSION}, which this role may not create: run"
            " `license-svc migrate` as the schema's owner first"
        )


def record(curs: Any, schema: str) -> None:
    create_table(curs, schema)
    curs.execute(
        SQL(
            "INSERT INTO {} (name, value) VALUES (%s, %s) ON CONFLICT (name)"
            " DO UPDATE SET value = excluded.value, recorded_at = now()"
        ).format(Identifier(schema, TABLE)),
        (VERSION, str(SCHEMA_VERSION)),
    )


def grants(schema: str, service: str = "", readonly: str = "") -> list[Composed]:
    """The service role reads and writes rows (and takes the writers' table lock, which needs
    UPDATE); the read-only role only reads. Default privileges give both the same rights on
    what the owner creates later (a rebuild's new generation of a view)."""
    s = Identifier(schema)
    statements: list[Composed] = []
    for role, tables, sequences in (
        (service, "SELECT, INSERT, UPDATE, DELETE", "USAGE, SELECT"),
        (readonly, "SELECT", "SELECT"),
    ):
        if not role:
            continue
        r = Identifier(role)
        statements += [
            SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r),
            SQL(f"GRANT {tables} ON ALL TABLES IN SCHEMA {{}} TO {{}}").format(s, r),
            SQL(f"GRANT {sequences} ON ALL SEQUENCES IN SCHEMA {{}} TO {{}}").format(s, r),
            SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}").format(s, r),
            SQL(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {{}} GRANT {tables} ON TABLES TO {{}}").format(
                s, r
            ),
            SQL(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {{}} GRANT {sequences} ON SEQUENCES TO {{}}"
            ).format(s, r),
        ]
    return statements


def may_create(conn: Any, role: str, schema: str) -> bool:
    """Whether `role` may create in `schema` (PUBLIC's CREATE on `public` before PostgreSQL 15)."""
    row = conn.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')", (role, schema)).fetchone()
    return bool(_first(row))


def _first(row: Any) -> Any:
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
