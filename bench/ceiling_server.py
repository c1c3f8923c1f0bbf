"""Ceilings (a)–(c): the bare grpcio server the service is built on, with the same settings.

It answers `EntitlementService.GetSeatAllowance`, so the load generator's code and messages
are exactly those of the real read path; only the work behind the call differs:

    echo    (a) a constant answer, no I/O
    select  (b) + one primary-key SELECT through a psycopg pool (prepared)
    insert  (c) + one single-row INSERT and COMMIT

and, to weigh the server model, the same on a `grpc.aio` server that hands the (sync) store
call to a thread, as a service built on the sync `eventsourcing` library would:

    aio-echo, aio-select

No auth interceptor, no eventsourcing: what gRPC + Postgres can do on this machine.
Run as `python -m bench.ceiling_server MODE` with the service's LICENSE_SVC_* environment.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from psycopg_pool import ConnectionPool

from license_svc import config
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc

TABLE_SQL = [
    "CREATE TABLE IF NOT EXISTS bench_allowance ("
    " account_id text PRIMARY KEY, seats integer NOT NULL, tier integer NOT NULL,"
    " active boolean NOT NULL, valid_until timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bench_writes ("
    " id bigserial PRIMARY KEY, account_id text NOT NULL, at timestamptz NOT NULL)",
]
SEED_SQL = (
    "INSERT INTO bench_allowance"
    " SELECT 'acct-' || lpad(i::text, 6, '0'), 3, 2, true, now() + interval '1 year'"
    " FROM generate_series(0, %s - 1) AS i ON CONFLICT DO NOTHING"
)
SELECT_SQL = "SELECT seats, tier, active, valid_until FROM bench_allowance WHERE account_id = %s"
INSERT_SQL = "INSERT INTO bench_writes (account_id, at) VALUES (%s, now())"
ACCOUNTS = 10_000


def account(index: int) -> str:
    return f"acct-{index % ACCOUNTS:06d}"


def prepare_tables(conn: Any) -> None:
    """Create and fill the ceiling tables (the caller commits)."""
    for statement in TABLE_SQL:
        conn.execute(statement)
    conn.execute(SEED_SQL, (ACCOUNTS,))


Handler = Callable[[pb.GetSeatAllowanceRequest], pb.SeatAllowance]


def handlers(pool: ConnectionPool | None) -> dict[str, Handler]:
    def echo(request: pb.GetSeatAllowanceRequest) -> pb.SeatAllowance:
        return pb.SeatAllowance(
            account_id=request.account_id,
            product=request.product,
            seats=3,
            tier=pb.TIER_GROWTH,
            active=True,
            connections_in_use=request.connections_in_use,
            can_create_connection=request.connections_in_use < 3,
            remaining=max(0, 3 - request.connections_in_use),
        )

    def select(request: pb.GetSeatAllowanceRequest) -> pb.SeatAllowance:
        assert pool is not None
        with pool.connection() as conn:
            row = conn.execute(SELECT_SQL, (request.account_id,), prepare=True).fetchone()
        answer = pb.SeatAllowance(account_id=request.account_id, product=request.product)
        if row:
            seats, tier, active, valid_until = row
            answer.seats, answer.tier, answer.active = seats, tier, active
            answer.valid_until.FromDatetime(valid_until)
            answer.remaining = max(0, seats - request.connections_in_use)
            answer.can_create_connection = answer.remaining > 0
        return answer

    def insert(request: pb.GetSeatAllowanceRequest) -> pb.SeatAllowance:
        assert pool is not None
        with pool.connection() as conn:  # commits on leaving the block
            conn.execute(INSERT_SQL, (request.account_id,), prepare=True)
        return echo(request)

    return {"echo": echo, "select": select, "insert": insert}


def _pool(settings: config.Settings) -> ConnectionPool:
    return ConnectionPool(
        settings.database_url,
        min_size=settings.pool_size,
        max_size=settings.pool_size + settings.pool_max_overflow,
        timeout=settings.connect_timeout,
        open=True,
    )


class CeilingServicer(pb_grpc.EntitlementServiceServicer):
    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def GetSeatAllowance(
        self, request: pb.GetSeatAllowanceRequest, context: grpc.ServicerContext
    ) -> pb.SeatAllowance:
        return self._handler(request)


class AioCeilingServicer(pb_grpc.EntitlementServiceServicer):
    def __init__(self, handler: Handler, threaded: bool) -> None:
        self._handler = handler
        self._threaded = threaded

    async def GetSeatAllowance(  # type: ignore[override]
        self, request: pb.GetSeatAllowanceRequest, context: Any
    ) -> pb.SeatAllowance:
        if self._threaded:
            return await asyncio.to_thread(self._handler, request)
        return self._handler(request)


async def serve_aio(settings: config.Settings, handler: Handler, threaded: bool) -> None:
    limit = settings.max_message_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", int(settings.so_reuseport)),
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ],
    )
    pb_grpc.add_EntitlementServiceServicer_to_server(AioCeilingServicer(handler, threaded), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(settings.listen)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    await stopping.wait()
    await server.stop(1)


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "echo"
    settings = config.load()
    pool = None
    if mode.startswith("aio-"):
        if mode != "aio-echo":
            pool = _pool(settings)
        base = mode.removeprefix("aio-")
        # To a thread with the sync pool's default size, as asyncio.to_thread does.
        asyncio.run(serve_aio(settings, handlers(pool)[base], threaded=base != "echo"))
        if pool is not None:
            pool.close()
        return 0
    if mode != "echo":
        pool = _pool(settings)
    limit = settings.max_message_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.so_reuseport", int(settings.so_reuseport)),
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ],
    )
    pb_grpc.add_EntitlementServiceServicer_to_server(CeilingServicer(handlers(pool)[mode]), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(settings.listen)
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    stopping.wait()
    server.stop(1).wait()
    if pool is not None:
        pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
