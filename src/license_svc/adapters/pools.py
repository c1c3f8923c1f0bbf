"""How the library's connection pools behave when the database goes away and comes back.

`eventsourcing` builds its psycopg pool itself, with the defaults of a batch job: a checkout
waits `POSTGRES_CONNECT_TIMEOUT` (and the library retries a failed statement 10 times, so a
call could wait 10 checkouts), no connect timeout on the connections, no statement timeout,
and psycopg_pool's reconnection back-off of 1 s doubling (an outage of a minute left calls
failing for half a minute after the database was back). `harden()` fixes what the library does
not expose, on a pool that has not opened yet:

- every connection gets the service's libpq options (`Settings.connect_options()`: connect
  timeout, TCP keepalives and user timeout, server-side `statement_timeout`);
- reconnection is retried every 0.1–0.5 s instead of backing off to tens of seconds;
- once the service is built, a checkout waits at most `pool_timeout` (`serve_quickly`); not
  before: opening a fresh pool on a busy database may take longer than a call should wait.

Broken pooled connections are discarded by psycopg_pool when they are returned after a failure
(their status is then UNKNOWN); `dbhealth` also checks the idle ones when the database returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool
from psycopg_pool.base import AttemptWithBackoff

CONNECT_OPTIONS = "SERVICE_CONNECT_OPTIONS"
MAX_RECONNECT_DELAY = 0.5


class QuickAttempt(AttemptWithBackoff):
    """psycopg_pool's back-off, starting at 0.1 s and capped at MAX_RECONNECT_DELAY."""

    INITIAL_DELAY = 0.1
    DELAY_BACKOFF = 1.5

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, MAX_RECONNECT_DELAY)


class ServicePool(ConnectionPool):  # type: ignore[type-arg]
    """The library's pool, reconnecting quickly. Overrides psycopg_pool 3.2's private
    `_add_connection` only to hand it a QuickAttempt; should it change, reconnection falls back
    to the stock back-off: slower, never wrong."""

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        if attempt is None:
            attempt = QuickAttempt(timeout=self.reconnect_timeout)
        super()._add_connection(attempt, growing)


def harden(datastore: PostgresDatastore, env: Mapping[str, str]) -> None:
    """Apply the service's connection policy to a datastore's pool before it opens."""
    pool: Any = datastore.pool
    if not isinstance(pool, ConnectionPool) or not pool.closed:
        return  # opened already (or not psycopg_pool's): leave it as it is
    options = env.get(CONNECT_OPTIONS)
    if options and isinstance(pool.kwargs, dict):
        pool.kwargs = {**pool.kwargs, **conninfo_to_dict(options)}
    # The class changes, not the state: every setting the library chose is kept.
    pool.__class__ = ServicePool


def serve_quickly(datastore: PostgresDatastore, timeout: float) -> None:
    """From now on a checkout waits at most `timeout` (then the call answers UNAVAILABLE)."""
    if isinstance(datastore.pool, ConnectionPool):
        datastore.pool.timeout = timeout


def pools_of(*datastores: PostgresDatastore) -> list[Any]:
    return [d.pool for d in datastores if isinstance(d.pool, ConnectionPool)]
