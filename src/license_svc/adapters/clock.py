"""The service's clock: a function that returns an aware UTC datetime. Everything that needs the
time takes one, so tests pass their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
