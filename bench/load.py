"""The load generator: closed-loop `grpc.aio` clients in their own processes.

`run_load` is what a client process runs for one measurement: `concurrency` coroutines, each
calling, awaiting the answer and calling again until the window closes. All client processes
of one measurement start at the same wall-clock instant (`start_at`); each warms up first and
records only calls that start inside its window.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

from bench.scenarios import Exhausted, Items, Stubs, lookup

MAX_MESSAGE = 64 * 1024 * 1024


@dataclass(frozen=True)
class LoadSpec:
    scenario: str
    address: str
    concurrency: int
    duration: float
    warmup: float
    start_at: float  # time.time() at which the warm-up begins
    items: list[Any]
    once: bool  # items are fresh and used once
    channels: int = 4


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    units: int = 0  # calls, or rows for batch calls
    errors: dict[str, int] = field(default_factory=dict)
    error_sample: str = ""
    started: float = 0.0  # time.time() of the window's start
    finished: float = 0.0  # time.time() of the last recorded completion
    cpu_seconds: float = 0.0
    exhausted: bool = False
    extra: dict[str, float] = field(default_factory=dict)  # added to the row as it is


def run_load(spec: LoadSpec) -> LoadResult:
    """Entry point of a client process (picklable, top level)."""
    return asyncio.run(_run(spec))


def _channel(address: str) -> grpc.aio.Channel:
    # A local subchannel pool per channel gives each its own TCP connection, which the
    # kernel's SO_REUSEPORT balancing then spreads over the server processes.
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ],
    )


async def _run(spec: LoadSpec) -> LoadResult:
    scenario = lookup(spec.scenario)
    channels = [_channel(spec.address) for _ in range(max(1, min(spec.channels, spec.concurrency)))]
    for channel in channels:
        await channel.channel_ready()
    stubs = [Stubs(c) for c in channels]
    items = Items(spec.items, spec.once)
    result = LoadResult()
    errors: Counter[str] = Counter()
    await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    window_start = time.time() + spec.warmup
    window_end = window_start + spec.duration
    cpu0 = time.process_time()

    async def worker(index: int) -> None:
        stub = stubs[index % len(stubs)]
        while True:
            began = time.time()
            if began >= window_end:
                return
            try:
                units = await scenario.call(stub, items)
            except Exhausted:
                result.exhausted = True
                return
            except grpc.aio.AioRpcError as error:
                if began >= window_start:
                    errors[error.code().name] += 1
                    result.error_sample = result.error_sample or str(error.details())
                continue
            except Exception as error:  # a wrong answer: count it, keep the loop closed
                if began >= window_start:
                    errors[type(error).__name__] += 1
                    result.error_sample = result.error_sample or str(error)
                continue
            ended = time.time()
            if began >= window_start:
                result.latencies.append(ended - began)
                result.units += units
                result.finished = max(result.finished, ended)

    await asyncio.gather(*(worker(i) for i in range(spec.concurrency)))
    result.cpu_seconds = time.process_time() - cpu0
    result.started = window_start
    result.errors = dict(errors)
    for channel in channels:
        await channel.close(None)
    return result


def merge(results: list[LoadResult]) -> LoadResult:
    """One measurement's results from all its client processes."""
    merged = LoadResult()
    errors: Counter[str] = Counter()
    for r in results:
        merged.latencies.extend(r.latencies)
        merged.units += r.units
        errors.update(r.errors)
        merged.error_sample = merged.error_sample or r.error_sample
        merged.cpu_seconds += r.cpu_seconds
        merged.exhausted = merged.exhausted or r.exhausted
    merged.errors = dict(errors)
    merged.started = min((r.started for r in results), default=0.0)
    merged.finished = max((r.finished for r in results), default=0.0)
    return merged
