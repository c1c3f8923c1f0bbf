"""Small helpers of the chaos tests: a health probe and polling for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2

from tests.support import Client

T = TypeVar("T")


def health_of(client: Client) -> str:
    """SERVING, NOT_SERVING, or the status code of a failed Check (e.g. UNAVAILABLE)."""
    try:
        answer = client.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    except grpc.RpcError as error:
        return str(error.code().name)  # type: ignore[attr-defined]
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def eventually(condition: Callable[[], T], within: float, every: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy; fail after `within` seconds (a
    bound against hanging, not a speed target)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {condition}")
        time.sleep(every)
