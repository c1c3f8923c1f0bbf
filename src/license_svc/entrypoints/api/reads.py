"""What the servicers that read views share: how long a `min_position` read may wait."""

from __future__ import annotations

import grpc

from license_svc.access.fields import BadRequest


def wait_budget(context: grpc.ServicerContext, cap: float) -> float:
    """The call's remaining deadline, capped: with no client deadline grpcio reports ~9e18 s."""
    remaining = context.time_remaining()
    if remaining is None:
        return cap
    return max(0.0, min(float(remaining), cap))


def min_position(value: int) -> int:
    if value < 0:
        raise BadRequest([("min_position", "must not be negative")])
    return value
