"""Activation against real Postgres with an injected clock: periods, idempotency, expiry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import grpc
import psycopg
import pytest

from license_svc.bootstrap import Service
from license_svc.domain.key import KeyNotAvailable, KeyStatus
from license_svc.domain.tiers import Product, Tier
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.keys.app import Activation, IssueKeys
from license_svc.keys.dialog import DialogRequest
from tests.helpers import NOT_AVAILABLE, count_events, rich, stored_topics, unique
from tests.support import Client, FakeClock


def issue_one(service: Service, period_months: int = 1) -> tuple[str, str]:
    batch = service.app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.SCALE, 5, period_months, 1, unique("req"))
    )
    return batch.keys[0].code, str(batch.keys[0].key_id)


def dialog(code: str, account: str) -> DialogRequest:
    return DialogRequest(code, account, unique("sess"), Product.INTEGRATIONS)


@pytest.mark.parametrize(
    ("now", "months", "ends"),
    [
        (datetime(2026, 1, 31, 9, 30, tzinfo=UTC), 1, datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
        (datetime(2028, 1, 31, 18, 5, tzinfo=UTC), 1, datetime(2028, 2, 29, 18, 5, tzinfo=UTC)),
        (datetime(2025, 12, 31, 7, 0, tzinfo=UTC), 2, datetime(2026, 2, 28, 7, 0, tzinfo=UTC)),
        (datetime(2028, 2, 29, 12, 0, tzinfo=UTC), 12, datetime(2029, 2, 28, 12, 0, tzinfo=UTC)),
    ],
    ids=["jan31+1", "leap-jan31+1", "dec31+2", "feb29+12"],
)
def test_the_period_starts_at_activation_and_runs_whole_clamped_months(
    service: Service, clock: FakeClock, now: datetime, months: int, ends: datetime
) -> None:
    clock.set(now)
    code, _ = issue_one(service, period_months=months)
    activation = service.dialog.activate(dialog(code, unique("acct")))
    key = activation.key
    assert (key.activated_at, key.period_starts_at, key.period_ends_at) == (now, now, ends)


def test_the_same_account_again_gets_the_same_entitlement_and_position_and_appends_nothing(
    service: Service, clock: FakeClock, sql: psycopg.Connection
) -> None:
    code, key_id = issue_one(service)
    account = unique("acct")
    first = service.dialog.activate(dialog(code, account))
    before = count_events(sql)
    clock.advance(days=20)
    again = service.dialog.activate(dialog(code.lower(), account))
    assert count_events(sql) == before
    assert again.already_active and not first.already_active
    assert again.position == first.position
    assert again.key.period_starts_at == first.key.period_starts_at
    assert again.key.period_ends_at == first.key.period_ends_at
    assert stored_topics(sql, key_id) == ["KeyIssued", "KeyActivated"]


def test_a_key_whose_period_has_ended_is_not_available_to_anyone_before_any_sweep(
    service: Service, clock: FakeClock
) -> None:
    code, _ = issue_one(service)
    account = unique("acct")
    ends = service.dialog.activate(dialog(code, account)).key.period_ends_at
    assert ends is not None
    clock.set(ends)
    for who in (account, unique("acct")):
        with pytest.raises(KeyNotAvailable):
            service.dialog.validate(dialog(code, who))
        with pytest.raises(KeyNotAvailable):
            service.dialog.activate(dialog(code, who))


def test_a_key_recorded_as_expired_stays_not_available(service: Service, clock: FakeClock) -> None:
    code, _ = issue_one(service)
    account = unique("acct")
    activation = service.dialog.activate(dialog(code, account))
    assert service.app.expire(activation.key.id) is None  # the period still runs
    assert activation.key.period_ends_at is not None
    clock.set(activation.key.period_ends_at)
    change = service.app.expire(activation.key.id)
    assert change is not None and change.key.status is KeyStatus.EXPIRED
    assert service.app.expire(activation.key.id) is None  # never twice
    with pytest.raises(KeyNotAvailable):
        service.dialog.activate(dialog(code, account))


def test_a_revoked_key_is_not_available(service: Service) -> None:
    code, key_id = issue_one(service)
    service.app.revoke(UUID(key_id), reason="refund", revoked_by="reseller:acme", by_ops=False)
    for call in (service.dialog.validate, service.dialog.activate):
        with pytest.raises(KeyNotAvailable):
            call(dialog(code, unique("acct")))


# -- the same rules over a real channel, with the injected clock --


@pytest.fixture
def grpc_client(service: Service, serve_in_process: Callable[[Service], Client]) -> Client:
    return serve_in_process(service)


def test_activate_key_answers_the_clamped_period_as_timestamps(
    service: Service, grpc_client: Client
) -> None:
    code, key_id = issue_one(service, period_months=1)
    answer = grpc_client.activate(code, unique("acct"), unique("sess"))
    assert answer.entitlement.key_id == key_id
    assert answer.entitlement.period_starts_at.ToDatetime(tzinfo=UTC) == datetime(
        2026, 1, 31, 9, 30, tzinfo=UTC
    )
    assert answer.entitlement.period_ends_at.ToDatetime(tzinfo=UTC) == datetime(
        2026, 2, 28, 9, 30, tzinfo=UTC
    )
    assert answer.entitlement.tier == pb.TIER_SCALE and answer.entitlement.seats == 5


def test_an_expired_key_answers_key_not_available_with_the_exact_text(
    service: Service, clock: FakeClock, grpc_client: Client
) -> None:
    code, _ = issue_one(service)
    account = unique("acct")
    grpc_client.activate(code, account, unique("sess"))
    clock.advance(days=28)  # 2026-01-31 + 28 days = 2026-02-28, the end of the period
    for call in (grpc_client.validate, grpc_client.activate):
        with pytest.raises(grpc.RpcError) as refused:
            call(code, account, unique("sess"))
        error = rich(refused.value)
        assert (error.code, error.message, error.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            NOT_AVAILABLE,
            "KEY_NOT_AVAILABLE",
        )


def test_the_history_of_an_expired_key_ends_with_subscription_expired(
    service: Service, clock: FakeClock, grpc_client: Client
) -> None:
    code, key_id = issue_one(service)
    grpc_client.activate(code, unique("acct"), unique("sess"))
    clock.advance(days=40)
    expired = service.app.expire(UUID(key_id))
    assert expired is not None
    history = grpc_client.audit.GetKeyHistory(
        pb.GetKeyHistoryRequest(key_id=key_id), metadata=Client.as_("auditor"), timeout=10
    )
    assert [(e.type, e.version) for e in history.events] == [
        ("KeyIssued", 1),
        ("KeyActivated", 2),
        ("SubscriptionExpired", 3),
    ]
    assert history.events[-1].position == expired.position
    assert history.events[-1].payload["expired_at"] == "2026-02-28T09:30:00Z"


def test_two_simultaneous_activations_by_one_account_both_succeed_with_one_event(
    service: Service, sql: psycopg.Connection
) -> None:
    code, key_id = issue_one(service)
    account, copies = unique("acct"), 6
    start = threading.Barrier(copies)
    answers: list[Activation] = []
    failures: list[BaseException] = []

    def activate() -> None:
        start.wait()
        try:
            answers.append(service.dialog.activate(dialog(code, account)))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=activate) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(a.already_active for a in answers) == [False] + [True] * (copies - 1)
    assert len({a.position for a in answers}) == 1
    assert stored_topics(sql, key_id) == ["KeyIssued", "KeyActivated"]


def test_revoking_a_key_whose_subscription_has_expired_is_refused(
    service: Service, clock: FakeClock, grpc_client: Client
) -> None:
    code, key_id = issue_one(service)
    grpc_client.activate(code, unique("acct"), unique("sess"))
    clock.advance(days=31)
    assert service.app.expire(UUID(key_id)) is not None
    with pytest.raises(grpc.RpcError) as refused:
        grpc_client.keys.RevokeKey(
            pb.RevokeKeyRequest(key_id=key_id, reason="late refund"),
            metadata=Client.as_("ops"),
            timeout=10,
        )
    error = rich(refused.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "KEY_NOT_REVOCABLE")
