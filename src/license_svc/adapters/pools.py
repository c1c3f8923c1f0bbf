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

A call's deadline bounds its database work: the entry point puts the call's deadline in
`call_deadline`; a checkout made for it lowers the connection's `statement_timeout` to the time
the caller has left (and restores it on return), and a checkout after the deadline is refused
with `DeadlinePassed`, so nothing is started, retried or committed for a caller that gave up.

Broken pooled connections are discarded by psycopg_pool when they are returned after a failure
(their status is then UNKNOWN); `dbhealth` also checks the idle ones when the database returns.

`LoopPool` is the same policy for coroutines: a few asyncio connections for statements a server
runs on its event loop (the seat heartbeat), built from the datastore's pool settings.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg import AsyncConnection, Connection, pq
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from psycopg_pool.base import AttemptWithBackoff

CONNECT_OPTIONS = "SERVICE_CONNECT_OPTIONS"
STATEMENT_TIMEOUT_MS = "SERVICE_STATEMENT_TIMEOUT_MS"
MAX_RECONNECT_DELAY = 0.5
LOOP_POOL_MAX_WAITING = 4_096  # coroutines waiting for a loop pool's connection, at most
# The deadline (time.monotonic()) of the call being served on this thread or task; None: none.
call_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "call_deadline", default=None
)
_SET_TIMEOUT = "SELECT set_config('statement_timeout', %s, false)"


class DeadlinePassed(Exception):
    """The caller's deadline passed before its database work could start."""

    def __init__(self) -> None:
        super().__init__("The call's deadline passed before its database work could start")


def deadline_bound(configured_ms: int) -> int | None:
    """The statement timeout (ms) the current call's deadline asks for, when it is shorter
    than the connection's own; None otherwise. Raises DeadlinePassed once it has passed."""
    deadline = call_deadline.get()
    if deadline is None:
        return None
    left = int((deadline - time.monotonic()) * 1000)
    if left <= 0:
        raise DeadlinePassed()
    return left if not configured_ms or left < configured_ms else None


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

    statement_ms = 0  # the connections' own statement_timeout (0: unknown or none)

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        if attempt is None:
            attempt = QuickAttempt(timeout=self.reconnect_timeout)
        super()._add_connection(attempt, growing)

    def getconn(self, timeout: float | None = None) -> Connection[Any]:
        bound = deadline_bound(self.statement_ms)
        conn: Connection[Any] = super().getconn(timeout)
        if bound is not None:
            try:
                conn.execute(_SET_TIMEOUT, (f"{bound}ms",))
            except BaseException:
                self.putconn(conn)
                raise
            conn._license_svc_bounded = True  # type: ignore[attr-defined]
        return conn

    def putconn(self, conn: Connection[Any]) -> None:
        if getattr(conn, "_license_svc_bounded", False):
            conn._license_svc_bounded = False  # type: ignore[attr-defined]
            if conn.info.transaction_status == pq.TransactionStatus.IDLE:
                try:
                    conn.execute("RESET statement_timeout")  # back to the connection's own
                except Exception:
                    conn.close()  # the pool replaces it
            else:
                conn.close()
        super().putconn(conn)


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
    pool.statement_ms = int(env.get(STATEMENT_TIMEOUT_MS) or 0)  # type: ignore[attr-defined]


def serve_quickly(datastore: PostgresDatastore, timeout: float) -> None:
    """From now on a checkout waits at most `timeout` (then the call answers UNAVAILABLE)."""
    if isinstance(datastore.pool, ConnectionPool):
        datastore.pool.timeout = timeout


def pools_of(*datastores: PostgresDatastore) -> list[Any]:
    return [d.pool for d in datastores if isinstance(d.pool, ConnectionPool)]


class _QuickAsyncPool(AsyncConnectionPool):  # type: ignore[type-arg]
    """psycopg_pool's asyncio pool, reconnecting as quickly as `ServicePool`."""

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        if attempt is None:
            attempt = QuickAttempt(timeout=self.reconnect_timeout)
        await super()._add_connection(attempt, growing)


class LoopPool:
    """A few autocommit connections for statements a coroutine runs on the server's event loop
    itself, with no hop to a thread and back (that hop costs more than a short statement: the
    heartbeat's). Built like the datastore's pool (the same conninfo, libpq options and
    server-side timeouts), opened on the loop of its first checkout, at most `size`
    connections; a checkout waits at most `timeout` (PoolTimeout: UNAVAILABLE, retry), and at
    most `max_waiting` checkouts wait at once (past that one is refused at once:
    TooManyRequests, UNAVAILABLE "busy", retry).

    The caller's deadline: a checkout after it is refused (`DeadlinePassed`); a statement the
    deadline overtakes is cancelled with the call (gRPC cancels the coroutine, psycopg cancels
    the statement in the server). `check()` and `close()` may be called from any thread."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        size: int,
        timeout: float,
        max_waiting: int = LOOP_POOL_MAX_WAITING,
    ) -> None:
        sync: Any = datastore.pool
        kwargs = {k: v for k, v in dict(sync.kwargs).items() if k != "row_factory"}
        self._pool = _QuickAsyncPool(
            sync.conninfo,
            kwargs={**kwargs, "autocommit": True},
            connection_class=AsyncConnection,
            min_size=1,
            max_size=max(1, size),
            timeout=timeout,
            max_waiting=max(1, max_waiting),
            open=False,
            name="loop",
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        deadline_bound(0)  # raises once the caller's deadline has passed
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            await self._pool.open(wait=False)
        async with self._pool.connection() as conn:
            yield conn

    def check(self, timeout: float = 5.0) -> None:
        """Drop the idle connections an outage broke (the database monitor, on its thread)."""
        self._on_loop(self._pool.check(), timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._on_loop(self._pool.close(), timeout)

    def _on_loop(self, work: Coroutine[Any, Any, None], timeout: float) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            work.close()  # never opened (or its loop is gone, and its connections with it)
            return
        if _running_loop() is loop:
            loop.create_task(work)
            return
        asyncio.run_coroutine_threadsafe(work, loop).result(timeout)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
