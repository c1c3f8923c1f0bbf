"""Fixtures of the integration tests: the webhooks' worker and receivers around a service."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from license_svc.bootstrap import Service
from tests.support import FakeClock
from tests.webhook_receiver import Receiver
from tests.webhooks_support import Hooks, hooks_around, receivers_made


@pytest.fixture
def hooks(service: Service, clock: FakeClock) -> Iterator[Hooks]:
    yield from hooks_around(service, clock)


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    yield from receivers_made()
