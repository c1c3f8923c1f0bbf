"""The store remembers a fingerprint of the pepper it was created with, and refuses others.

The pepper derives every key's aggregate id and every replayed request's codes
(`domain/identity.py`): a replica started with another pepper would answer valid codes "not
available" and mint different codes for a replayed IssueKeys. So the first process to open a
store records HMAC-SHA256(pepper, label) — a keyed hash that reveals nothing of the pepper —
and every later process compares its own before it serves.
"""

from __future__ import annotations

import hashlib
import hmac

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from license_svc.adapters import schema
from license_svc.config import PREFIX, ConfigError

TABLE = schema.TABLE
LABEL = b"license-svc/pepper-fingerprint/v1"


def fingerprint(pepper: bytes) -> str:
    return hmac.digest(pepper, LABEL, hashlib.sha256).hex()


def check_pepper(datastore: PostgresDatastore, pepper: bytes, create: bool = True) -> None:
    """Record the pepper's fingerprint if the store has none; raise ConfigError if it differs.
    Runs under bootstrap's schema lock, so two first processes cannot both record theirs.
    `create`: make the table first (a role that may not run DDL finds it made by `migrate`)."""
    table = Identifier(datastore.schema, TABLE)
    mine = fingerprint(pepper)
    with datastore.transaction(commit=True) as curs:
        if create:
            schema.create_table(curs, datastore.schema)
        curs.execute(
            SQL(
                "INSERT INTO {} (name, value) VALUES ('pepper_fingerprint', %s)"
                " ON CONFLICT (name) DO NOTHING"
            ).format(table),
            (mine,),
        )
        curs.execute(SQL("SELECT value FROM {} WHERE name = 'pepper_fingerprint'").format(table))
        row = curs.fetchone()
    recorded = row["value"] if row else mine
    if not hmac.compare_digest(recorded, mine):
        raise ConfigError(
            f"{PREFIX}PEPPER (or {PREFIX}PEPPER_FILE) does not match the pepper this store was"
            " created with (its recorded fingerprint differs): start with the store's pepper"
        )
