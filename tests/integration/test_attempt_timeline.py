"""The limiter's one timeline (issue 7): the database's clock in production, an injected clock
in tests; either way no reservation is invisible to the next attempt, and a reservation left
behind by a dead server stops counting after a few minutes (issue 8)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import psycopg
import pytest

from license_svc.adapters.clock import utcnow
from license_svc.attempts.limiter import TooManyAttempts
from license_svc.bootstrap import Service
from license_svc.domain import codes
from license_svc.domain.key import KeyNotAvailable
from license_svc.domain.tiers import Product
from license_svc.keys.dialog import DialogRequest
from tests.helpers import unique
from tests.support import FakeClock


def guess(account: str, session: str) -> DialogRequest:
    return DialogRequest(codes.generate("INT").text(), account, session, Product.INTEGRATIONS)


def race(services: list[Service], account: str, sessions: list[str]) -> Counter[str]:
    """One thread per session name, released together, spread over the services in turn."""
    start = threading.Barrier(len(sessions))
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def attempt(service: Service, session: str) -> None:
        start.wait()
        try:
            service.dialog.validate(guess(account, session))
            outcome = "OK"
        except KeyNotAvailable:
            outcome = "KEY_NOT_AVAILABLE"
        except TooManyAttempts:
            outcome = "TOO_MANY_ATTEMPTS"
        with lock:
            outcomes[outcome] += 1

    threads = [
        threading.Thread(target=attempt, args=(services[i % len(services)], session))
        for i, session in enumerate(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.parametrize("skew", [2, -2])
def test_two_services_whose_clocks_are_two_seconds_apart_count_every_guess(
    make_service: Callable[..., Service], clock: FakeClock, skew: int
) -> None:
    other_clock = FakeClock(clock() + timedelta(seconds=skew))
    services = [make_service(clock), make_service(other_clock)]
    account = unique("acct")
    assert race(services, account, [f"{account}-s"] * 24) == {
        "KEY_NOT_AVAILABLE": 5,
        "TOO_MANY_ATTEMPTS": 19,
    }
    other = unique("acct")
    assert race(services, other, [f"{other}-s{i}" for i in range(32)]) == {
        "KEY_NOT_AVAILABLE": 20,
        "TOO_MANY_ATTEMPTS": 12,
    }


def test_on_the_database_clock_attempts_are_stamped_and_blocked_by_the_database(
    make_service: Callable[..., Service], sql: psycopg.Connection
) -> None:
    service = make_service(utcnow)  # the production timeline: no injected clock
    account, session = unique("acct"), unique("sess")
    for _ in range(5):
        with pytest.raises(KeyNotAvailable):
            service.dialog.activate(guess(account, session))
    with pytest.raises(TooManyAttempts) as blocked:
        service.dialog.validate(guess(account, session))
    assert timedelta(minutes=14) < blocked.value.retry_after <= timedelta(minutes=15)
    row = sql.execute(
        "SELECT now() - max(at), count(*) FROM failed_attempts WHERE account_id = %s", (account,)
    ).fetchone()
    assert row is not None and row[1] == 5 and timedelta(0) <= row[0] < timedelta(minutes=1)


def test_a_reservation_left_by_a_dead_server_stops_counting_after_five_minutes(
    service: Service, clock: FakeClock
) -> None:
    account, session = unique("acct"), unique("sess")
    for _ in range(5):  # begun, never ended: their server died mid-attempt
        service.limiter.begin(account, session, "ActivateKey")
    with pytest.raises(TooManyAttempts) as blocked:
        service.dialog.validate(guess(account, session))
    assert blocked.value.retry_after == timedelta(minutes=5)
    clock.advance(minutes=5)
    with pytest.raises(KeyNotAvailable):  # tried again: no longer blocked
        service.dialog.validate(guess(account, session))
    reasons = Counter(row["reason"] for row in service.limiter.recorded(account))
    assert reasons == {"IN_FLIGHT": 5, "KEY_NOT_AVAILABLE": 1}  # kept for the audit
