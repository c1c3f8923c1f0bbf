"""The failed-attempt limiter of rules §4 against real Postgres, with an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import psycopg
import pytest
from eventsourcing.persistence import OperationalError

from license_svc.attempts.limiter import TooManyAttempts
from license_svc.bootstrap import Service
from license_svc.domain import codes
from license_svc.domain.key import KeyNotAvailable
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.keys.dialog import DialogRequest, WrongProduct
from tests.helpers import unique
from tests.support import FakeClock

DIALOG_ERRORS = (codes.InvalidKeyFormat, WrongProduct, KeyNotAvailable)


def issue_one(service: Service) -> str:
    batch = service.app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.GROWTH, 3, 12, 1, unique("req"))
    )
    return batch.keys[0].code


def bad_codes() -> list[str]:
    """One of each failing kind: malformed, wrong product, never issued."""
    return ["INT-NOPE-NOPE", codes.generate("POS").text(), codes.generate("INT").text()]


def fail(service: Service, account: str, session: str, times: int) -> None:
    for i in range(times):
        request = DialogRequest(bad_codes()[i % 3], account, session, Product.INTEGRATIONS)
        call = service.dialog.validate if i % 2 else service.dialog.activate
        with pytest.raises(DIALOG_ERRORS):
            call(request)


def good(code: str, account: str, session: str) -> DialogRequest:
    return DialogRequest(code, account, session, Product.INTEGRATIONS)


def test_five_failures_block_even_a_good_key_until_the_window_has_passed(
    service: Service, clock: FakeClock
) -> None:
    code, account, session = issue_one(service), unique("acct"), unique("sess")
    fail(service, account, session, 5)
    for call in (service.dialog.validate, service.dialog.activate):
        with pytest.raises(TooManyAttempts) as blocked:
            call(good(code, account, session))
        assert blocked.value.retry_after == timedelta(minutes=15)
    clock.advance(minutes=15, seconds=-1)
    with pytest.raises(TooManyAttempts) as still:
        service.dialog.activate(good(code, account, session))
    assert still.value.retry_after == timedelta(seconds=1)
    clock.advance(seconds=1)
    assert service.dialog.validate(good(code, account, session)).seats == 3
    assert service.dialog.activate(good(code, account, session)).key.account_id == account


def test_four_failures_still_let_a_good_key_through(service: Service) -> None:
    code, account, session = issue_one(service), unique("acct"), unique("sess")
    fail(service, account, session, 4)
    assert service.dialog.activate(good(code, account, session)).already_active is False


def test_a_blocked_session_does_not_block_another_session_of_the_account(
    service: Service,
) -> None:
    code, account = issue_one(service), unique("acct")
    fail(service, account, "sess-blocked", 5)
    with pytest.raises(TooManyAttempts):
        service.dialog.validate(good(code, account, "sess-blocked"))
    assert service.dialog.activate(good(code, account, unique("sess"))).key.account_id == account


def test_the_per_account_limit_holds_across_new_sessions(
    service: Service, clock: FakeClock
) -> None:
    code, account = issue_one(service), unique("acct")
    started = clock()
    for _ in range(4):  # 4 sessions x 5 failures = the account's 20 an hour
        session = unique("sess")
        fail(service, account, session, 5)
        with pytest.raises(TooManyAttempts):
            service.dialog.validate(good(code, account, session))
        clock.advance(minutes=1)
    fresh_session = unique("sess")
    with pytest.raises(TooManyAttempts) as blocked:
        service.dialog.validate(good(code, account, fresh_session))
    assert clock() + blocked.value.retry_after == started + timedelta(hours=1)
    # Another account is untouched by this one's failures.
    assert service.dialog.validate(good(code, unique("acct"), fresh_session)).seats == 3
    clock.advance(seconds=blocked.value.retry_after.total_seconds())
    assert service.dialog.activate(good(code, account, fresh_session)).key.account_id == account


def test_refusals_of_a_blocked_session_are_not_counted_as_failed_attempts(
    service: Service, clock: FakeClock
) -> None:
    code, account, session = issue_one(service), unique("acct"), unique("sess")
    fail(service, account, session, 5)
    for _ in range(10):
        with pytest.raises(TooManyAttempts):
            service.dialog.validate(good(code, account, session))
    assert len(service.limiter.recorded(account)) == 5
    clock.advance(minutes=15)
    assert service.dialog.validate(good(code, account, session)).seats == 3


def test_every_failed_attempt_is_recorded_for_audit_without_the_code(
    service: Service, clock: FakeClock, sql: psycopg.Connection
) -> None:
    account, session = unique("acct"), unique("sess")
    malformed, pos, unknown = "INT-NOPE-NOPE", codes.generate("POS"), codes.generate("INT")
    attempts = [
        (service.dialog.validate, malformed, "ValidateKey", "INVALID_KEY_FORMAT", None),
        (service.dialog.activate, pos.text(), "ActivateKey", "WRONG_PRODUCT", None),
        (
            service.dialog.activate,
            unknown.text().lower(),
            "ActivateKey",
            "KEY_NOT_AVAILABLE",
            service.app.key_id_of(unknown),
        ),
    ]
    for call, code, *_ in attempts:
        with pytest.raises(DIALOG_ERRORS):
            call(good(code, account, session))
        clock.advance(seconds=10)
    rows = service.limiter.recorded(account)
    assert [(r["method"], r["reason"], r["key_id"]) for r in rows] == [a[2:] for a in attempts]
    assert all(r["session_id"] == session for r in rows)
    assert [r["at"] for r in rows] == [clock() - timedelta(seconds=s) for s in (30, 20, 10)]
    dumped = sql.execute(
        "SELECT string_agg(row_to_json(f)::text, ' ') FROM failed_attempts f WHERE account_id = %s",
        (account,),
    ).fetchone()
    assert dumped is not None
    for parsed in (pos, unknown):
        assert parsed.text() not in dumped[0] and parsed.body not in dumped[0]


def test_the_same_account_activating_its_key_again_is_never_a_failed_attempt(
    service: Service,
) -> None:
    code, account, session = issue_one(service), unique("acct"), unique("sess")
    first = service.dialog.activate(good(code, account, session))
    for _ in range(7):
        again = service.dialog.activate(good(code, account, session))
        assert again.already_active and again.position == first.position
        service.dialog.validate(good(code, account, session))
    assert service.limiter.recorded(account) == []


def test_the_session_limit_and_block_window_are_configurable(
    make_service: Callable[..., Service], clock: FakeClock
) -> None:
    service = make_service(clock, session_attempt_limit=3, session_block_seconds=60)
    code, account, session = issue_one(service), unique("acct"), unique("sess")
    fail(service, account, session, 3)
    with pytest.raises(TooManyAttempts) as blocked:
        service.dialog.validate(good(code, account, session))
    assert blocked.value.retry_after == timedelta(seconds=60)
    clock.advance(seconds=60)
    assert service.dialog.validate(good(code, account, session)).seats == 3


def test_two_services_on_one_database_share_the_counters(
    make_service: Callable[..., Service], clock: FakeClock
) -> None:
    first, second = make_service(clock), make_service(clock)
    code, account, session = issue_one(first), unique("acct"), unique("sess")
    fail(first, account, session, 3)
    fail(second, account, session, 2)
    for service in (first, second):
        with pytest.raises(TooManyAttempts):
            service.dialog.activate(good(code, account, session))


def test_guesses_fired_at_once_in_one_session_get_only_five_tries(service: Service) -> None:
    account, session = unique("acct"), unique("sess")
    racers = 16
    start = threading.Barrier(racers)
    outcomes: list[str] = []

    def guess() -> None:
        request = good(codes.generate("INT").text(), account, session)  # never issued
        start.wait()
        try:
            service.dialog.validate(request)
            outcomes.append("OK")
        except KeyNotAvailable:
            outcomes.append("KEY_NOT_AVAILABLE")
        except TooManyAttempts:
            outcomes.append("TOO_MANY_ATTEMPTS")

    threads = [threading.Thread(target=guess) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["KEY_NOT_AVAILABLE"] * 5 + ["TOO_MANY_ATTEMPTS"] * (racers - 5)
    assert [row["reason"] for row in service.limiter.recorded(account)] == ["KEY_NOT_AVAILABLE"] * 5


def test_an_attempt_the_service_could_not_answer_is_not_counted(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, account, session = issue_one(service), unique("acct"), unique("sess")

    def store_down(*_: object) -> None:
        raise OperationalError("the store is unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(service.app, "activate", store_down)
        for _ in range(6):
            with pytest.raises(OperationalError):
                service.dialog.activate(good(code, account, session))
    assert service.limiter.recorded(account) == []
    assert service.dialog.activate(good(code, account, session)).key.account_id == account
