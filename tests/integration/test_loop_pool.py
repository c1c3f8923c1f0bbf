"""The heartbeats' pool (`adapters.pools.LoopPool`): connections made like the datastore's,
opened on the event loop of the first checkout, at most `size` of them, no checkout after the
caller's deadline, and `check()`/`close()` callable from other threads (the database monitor's,
the server's stop) while the loop runs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg_pool import PoolTimeout, TooManyRequests

from license_svc.adapters.pools import DeadlinePassed, LoopPool, call_deadline
from license_svc.bootstrap import Service

T = TypeVar("T")


class LoopThread:
    """An event loop on a thread of its own, as the server's."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


def _pool(service: Service, size: int = 2, timeout: float = 0.3) -> LoopPool:
    return LoopPool(service.datastore, size, timeout)


async def _backend(pool: LoopPool) -> tuple[int, str]:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT pg_backend_pid(), current_setting('statement_timeout')")
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def test_its_connections_carry_the_service_statement_timeout_and_autocommit(
    service: Service, loop: LoopThread
) -> None:
    pool = _pool(service)
    try:
        _, timeout = loop.run(_backend(pool))
        assert timeout == f"{int(service.settings.statement_timeout)}s"

        async def status() -> bool:
            async with pool.connection() as conn:
                return conn.autocommit

        assert loop.run(status())
    finally:
        pool.close()


def test_at_most_size_connections_and_a_checkout_past_them_waits_its_timeout_then_fails(
    service: Service, loop: LoopThread
) -> None:
    pool = _pool(service, size=2, timeout=0.3)

    async def scenario() -> type[BaseException] | None:
        holding = 0
        both = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            nonlocal holding
            async with pool.connection():
                holding += 1
                if holding == 2:
                    both.set()
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        await both.wait()
        try:
            async with pool.connection():
                return None
        except PoolTimeout:
            return PoolTimeout
        finally:
            release.set()
            await asyncio.gather(*holders)

    try:
        assert loop.run(scenario()) is PoolTimeout
        assert pool._pool.get_stats()["pool_max"] == 2
    finally:
        pool.close()


def test_no_checkout_once_the_callers_deadline_has_passed(
    service: Service, loop: LoopThread
) -> None:
    pool = _pool(service)

    async def late() -> None:
        call_deadline.set(time.monotonic() - 1)
        async with pool.connection():
            pass

    try:
        with pytest.raises(DeadlinePassed):
            loop.run(late())
        assert pool._loop is None  # nothing was even opened
    finally:
        pool.close()


def test_check_from_another_thread_replaces_a_connection_the_database_dropped(
    service: Service, loop: LoopThread, sql: psycopg.Connection
) -> None:
    pool = _pool(service, size=1)
    try:
        pid, _ = loop.run(_backend(pool))
        sql.execute("SELECT pg_terminate_backend(%s)", (pid,))
        pool.check()  # the database monitor's thread, when the database is back
        again, _ = loop.run(_backend(pool))
        assert again != pid
    finally:
        pool.close()


def test_close_from_another_thread_closes_its_connections(
    service: Service, loop: LoopThread, sql: psycopg.Connection
) -> None:
    pool = _pool(service)
    pid, _ = loop.run(_backend(pool))
    pool.close()
    for _ in range(100):  # the backend ends when the client's socket closes
        row = sql.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row is not None and row[0] == 0:
            break
        time.sleep(0.05)
    assert row is not None and row[0] == 0


def test_at_most_max_waiting_checkouts_wait_and_the_next_is_refused_at_once(
    service: Service, loop: LoopThread
) -> None:
    pool = LoopPool(service.datastore, 1, timeout=30, max_waiting=1)

    async def scenario() -> str:
        holding = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with pool.connection():
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await holding.wait()
        waiter = asyncio.create_task(hold())  # waits for the one connection
        while not pool._pool.get_stats().get("requests_waiting"):
            await asyncio.sleep(0)
        try:
            async with pool.connection():
                return "served"
        except TooManyRequests:
            return "refused"
        finally:
            release.set()
            await asyncio.gather(holder, waiter)

    try:
        assert loop.run(scenario()) == "refused"
    finally:
        pool.close()
