"""The view reads' datastore on a standby (`LICENSE_SVC_READ_DATABASE_URL`), when one is set.

A second library datastore, hardened like the primary's (`pools.harden`: connect, keepalive and
statement timeouts, quick reconnection, the call's deadline), built from the read URL; it never
creates a table (a standby refuses DDL, and the primary's tables arrive by replication).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import Environment

from license_svc.adapters import pools
from license_svc.config import Settings


def read_datastore(settings: Settings) -> PostgresDatastore | None:
    if not settings.read_database_url:
        return None
    env = {
        **settings.with_(database_url=settings.read_database_url).eventsourcing_env(),
        "CREATE_TABLE": "n",
    }
    factory: Any = InfrastructureFactory.construct(env=Environment("LicensingReads", env))
    datastore: PostgresDatastore = factory.datastore
    pools.harden(datastore, env)
    pools.serve_quickly(datastore, settings.pool_timeout)
    return datastore
