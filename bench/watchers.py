"""WatchSeatAllowance watchers in client processes (`grpc.aio`): fan-out latency and idle streams.

A watcher process opens its streams, waits until every one has its first message, says so by
creating `ready_path`, then records when each later message arrives and which seat count it
shows. The orchestrator commits one activation per expected update and matches them by seats:
update k raises the account to k × `seats_per_update` seats, so a message showing at least that
delivers update k (two updates in one message still count, each at that message's arrival).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.load import _channel
from bench.scenarios import auth
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc

STREAMS_PER_CHANNEL = 100  # below any HTTP/2 concurrent-stream limit


@dataclass(frozen=True)
class WatchSpec:
    address: str
    accounts: list[str]  # one stream per entry (repeat an account for fan-out)
    updates: int  # messages to wait for after the first (0: idle, hold until `hold_path`)
    seats_per_update: int
    ready_path: str
    hold_path: str  # idle watchers stay until this file exists
    timeout: float


@dataclass
class WatchResult:
    arrivals: list[list[tuple[float, int]]]  # per stream: (time.time(), seats) after the first
    cpu_seconds: float
    failures: int
    failure_sample: str = ""
    opened: int = 0  # streams that got their first message


def run_watchers(spec: WatchSpec) -> WatchResult:
    """Entry point of a watcher process (picklable, top level)."""
    return asyncio.run(_run(spec))


async def _run(spec: WatchSpec) -> WatchResult:
    count = len(spec.accounts)
    channels = [_channel(spec.address) for _ in range(max(1, -(-count // STREAMS_PER_CHANNEL)))]
    for channel in channels:
        await channel.channel_ready()
    stubs = [pb_grpc.EntitlementServiceStub(c) for c in channels]
    arrivals: list[list[tuple[float, int]]] = [[] for _ in spec.accounts]
    first = [asyncio.Event() for _ in spec.accounts]
    failures: list[str] = []
    opened: list[int] = []
    cpu0 = time.process_time()

    async def watch(i: int) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
        request = pb.WatchSeatAllowanceRequest(
            account_id=spec.accounts[i], product=pb.PRODUCT_INTEGRATIONS
        )
        call = stubs[i % len(stubs)].WatchSeatAllowance(
            request, metadata=auth("integrations"), timeout=spec.timeout
        )
        try:
            await call.read()
            opened.append(i)
            first[i].set()
            while len(arrivals[i]) < spec.updates:
                message = await call.read()
                if message is grpc.aio.EOF:  # type: ignore[attr-defined]
                    break
                arrivals[i].append((time.time(), message.allowance.seats))
                if message.allowance.seats >= spec.updates * spec.seats_per_update:
                    break
        except grpc.aio.AioRpcError as error:
            failures.append(f"{error.code().name}: {error.details()}")
        finally:
            first[i].set()
        if spec.updates == 0:
            await _wait_for(Path(spec.hold_path), spec.timeout)
        return call

    tasks = [asyncio.create_task(watch(i)) for i in range(count)]
    await asyncio.gather(*(event.wait() for event in first))
    Path(spec.ready_path).touch()
    # Streams are ended only when every one has its last update: a stream cancelled as soon as
    # it has its own would make the server tear it down while still writing to the others.
    calls = await asyncio.gather(*tasks)
    for call in calls:
        call.cancel()
    cpu = time.process_time() - cpu0
    for channel in channels:
        await channel.close(None)
    return WatchResult(arrivals, cpu, len(failures), failures[0] if failures else "", len(opened))


async def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
