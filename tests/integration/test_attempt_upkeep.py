"""The limiter's housekeeping (issue 8): support lifts a block, recorded for audit; the audit
keeps a retention and deletes older rows in batches. Real Postgres, an injected clock."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from license_svc.attempts.limiter import TooManyAttempts
from license_svc.attempts.upkeep import lift_block, lifts_of, purge
from license_svc.bootstrap import Service
from license_svc.domain import codes
from license_svc.domain.key import KeyNotAvailable
from license_svc.domain.tiers import Product
from license_svc.keys.dialog import DialogRequest
from tests.helpers import unique
from tests.support import FakeClock


def guess(service: Service, account: str, session: str) -> None:
    request = DialogRequest(codes.generate("INT").text(), account, session, Product.INTEGRATIONS)
    service.dialog.validate(request)


def fail(service: Service, account: str, session: str, times: int = 5) -> None:
    for _ in range(times):
        with pytest.raises(KeyNotAvailable):
            guess(service, account, session)


def blocked(service: Service, account: str, session: str) -> bool:
    try:
        guess(service, account, session)
    except TooManyAttempts:
        return True
    except KeyNotAvailable:
        return False
    raise AssertionError("a guess was accepted")


def test_lifting_a_sessions_block_forgives_its_failures_and_records_who_and_why(
    service: Service, clock: FakeClock
) -> None:
    account, session, other = unique("acct"), unique("sess"), unique("sess")
    fail(service, account, other, 2)
    fail(service, account, session)
    assert blocked(service, account, session)
    clock.advance(minutes=1)
    lift = lift_block(service.limiter, account, session, by="ops:alice", reason="ticket 4711")
    assert lift.lifted == 5 and lift.at == clock()
    assert not blocked(service, account, session)  # tried again: a failure, not a refusal
    rows = service.limiter.recorded(account)
    assert len(rows) == 8  # every failure stays in the audit trail
    assert [r["lift_id"] for r in rows if r["session_id"] == session][:5] == [lift.id] * 5
    assert all(r["lift_id"] is None for r in rows if r["session_id"] == other)
    [recorded] = lifts_of(service.limiter, account)
    assert (recorded["session_id"], recorded["lifted_by"], recorded["reason"]) == (
        session,
        "ops:alice",
        "ticket 4711",
    )
    assert recorded["lifted"] == 5


def test_lifting_an_accounts_block_unblocks_every_session_of_it(service: Service) -> None:
    account = unique("acct")
    sessions = [unique("sess") for _ in range(4)]
    for session in sessions:  # 4 x 5: the account's 20 an hour
        fail(service, account, session)
    assert blocked(service, account, unique("sess"))
    lift = lift_block(service.limiter, account, "", by="ops", reason="customer verified")
    assert lift.lifted == 20
    for session in [*sessions, unique("sess")]:
        assert not blocked(service, account, session)
    other = unique("acct")  # another account's failures are not touched
    fail(service, other, "s")
    assert lift_block(service.limiter, account, "", by="ops", reason="again").lifted == 5
    assert blocked(service, other, "s")


def test_a_lift_marks_only_failures_that_still_count(service: Service, clock: FakeClock) -> None:
    account, session = unique("acct"), unique("sess")
    fail(service, account, session, 3)
    clock.advance(hours=2)  # past both windows: these no longer count anyway
    fail(service, account, session, 2)
    assert lift_block(service.limiter, account, session, by="ops", reason="r").lifted == 2
    assert lift_block(service.limiter, account, session, by="ops", reason="r").lifted == 0


def test_retention_deletes_older_rows_in_batches_and_keeps_the_rest(
    service: Service, clock: FakeClock, sql: psycopg.Connection
) -> None:
    account = unique("acct")
    fail(service, account, "recent", 2)
    lift_block(service.limiter, account, "recent", by="ops", reason="recent lift")
    for days in (100, 95, 91, 30):
        sql.execute(
            "INSERT INTO failed_attempts (at, account_id, session_id, method, reason)"
            " VALUES (%s, %s, %s, 'ValidateKey', 'KEY_NOT_AVAILABLE')",
            (clock() - timedelta(days=days), account, f"old-{days}"),
        )
    sql.execute(
        "INSERT INTO attempt_block_lifts (at, account_id, session_id, lifted_by, reason)"
        " VALUES (%s, %s, '', 'ops', 'old lift')",
        (clock() - timedelta(days=120), account),
    )
    assert purge(service.limiter, timedelta(days=90), batch=2) == 3
    sessions = sorted(str(r["session_id"]) for r in service.limiter.recorded(account))
    assert sessions == ["old-30", "recent", "recent"]
    assert [lift["reason"] for lift in lifts_of(service.limiter, account)] == ["recent lift"]
    assert purge(service.limiter, timedelta(days=90), batch=2) == 0


def test_retention_never_deletes_a_failure_that_still_counts(
    service: Service, clock: FakeClock
) -> None:
    account, session = unique("acct"), unique("sess")
    fail(service, account, session)
    clock.advance(minutes=10)
    purge(service.limiter, timedelta(0))  # shorter than the windows: the windows win
    assert len(service.limiter.recorded(account)) == 5
    assert blocked(service, account, session)
