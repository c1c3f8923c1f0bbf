"""What one run measures: concurrency levels, windows and data sizes (full and --quick)."""

from __future__ import annotations

from dataclasses import dataclass

TARGET_CONCURRENCY = 32  # the issue's targets are ratios at this concurrency


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...]
    duration: float  # seconds of each measurement window
    warmup: float
    issue_levels: tuple[int, ...]  # IssueKeys: one call mints 10,000 keys (~1 s of server CPU)
    scaling_levels: tuple[int, ...]  # read throughput with the other number of server workers
    seed_activated: int  # keys activated before the reads (accounts, histories)
    seed_unredeemed: int  # keys left to validate
    rebuild_events: int  # events in the store before the projection rebuild
    clients: int = 1  # load-generator processes
    # gRPC channels (TCP connections) per client process: enough that the kernel's SO_REUSEPORT
    # hashing rarely leaves a replica without connections (all 8 on one of 2: p = 1/128).
    channels: int = 8

    @classmethod
    def full(cls) -> Plan:
        return cls(
            levels=(1, 8, 32, 64),
            duration=5.0,
            warmup=1.0,
            issue_levels=(1, 8, 32),
            scaling_levels=(32, 64),
            seed_activated=1_000,
            seed_unredeemed=2_000,
            rebuild_events=100_000,
        )

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            levels=(1, 32),
            duration=1.5,
            warmup=0.3,
            issue_levels=(1, 4),
            scaling_levels=(32,),
            seed_activated=200,
            seed_unredeemed=500,
            rebuild_events=20_000,
        )
