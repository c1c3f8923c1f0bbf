"""Point-in-time reads (`as_of`) through a real gRPC server around a service with an injected
clock: every answer equals what the live read said at that instant, field by field."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich
from tests.support import Client, FakeClock

ACCOUNTS = 3
STEP = st.tuples(
    st.sampled_from(["activate", "activate", "revoke", "sweep", "wait"]),
    st.integers(0, ACCOUNTS - 1),  # which account
    st.integers(1, 40),  # days to wait / seats
    st.sampled_from([pb.TIER_STARTER, pb.TIER_GROWTH, pb.TIER_SCALE]),
)


@pytest.fixture
def world(serve_projected: Callable[..., tuple[Client, Service]]) -> tuple[Client, Service]:
    return serve_projected()


def stamp(value: object) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)  # type: ignore[arg-type]
    return out


def live(
    client: Client, account: str, head: int
) -> tuple[pb.SubscriptionSummary, pb.SeatAllowance]:
    meta = Client.as_("integrations")
    summary = client.entitlements.GetSubscriptionSummary(
        pb.GetSubscriptionSummaryRequest(
            account_id=account, product=pb.PRODUCT_INTEGRATIONS, min_position=head
        ),
        metadata=meta,
        timeout=30,
    )
    allowance = client.entitlements.GetSeatAllowance(
        pb.GetSeatAllowanceRequest(
            account_id=account,
            product=pb.PRODUCT_INTEGRATIONS,
            connections_in_use=2,
            min_position=head,
        ),
        metadata=meta,
        timeout=30,
    )
    return summary, allowance


def at(
    client: Client, account: str, when: object
) -> tuple[pb.SubscriptionSummary, pb.SeatAllowance]:
    meta = Client.as_("auditor")
    summary = client.entitlements.GetSubscriptionSummary(
        pb.GetSubscriptionSummaryRequest(
            account_id=account, product=pb.PRODUCT_INTEGRATIONS, as_of=stamp(when)
        ),
        metadata=meta,
        timeout=30,
    )
    allowance = client.entitlements.GetSeatAllowance(
        pb.GetSeatAllowanceRequest(
            account_id=account,
            product=pb.PRODUCT_INTEGRATIONS,
            connections_in_use=2,
            as_of=stamp(when),
        ),
        metadata=meta,
        timeout=30,
    )
    return summary, allowance


def answer_only(message: Any) -> object:
    copy = type(message)()
    copy.CopyFrom(message)
    copy.ClearField("position")
    copy.ClearField("as_of")
    return copy


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=2, max_size=8))
def test_as_of_answers_what_the_live_read_said_at_every_instant(
    world: tuple[Client, Service], clock: FakeClock, steps: list[tuple[str, int, int, int]]
) -> None:
    client, service = world
    run = uuid.uuid4().hex[:8]
    accounts = [f"pit-{run}-{i}" for i in range(ACCOUNTS)]
    first = clock()
    active: dict[str, list[str]] = {a: [] for a in accounts}
    recorded = []
    for action, which, number, tier in steps:
        account = accounts[which]
        if action == "activate":
            key = client.issue(1, tier=tier, seats=number, period_months=1).keys[0]
            client.activate(key.code, account, session=f"s-{run}")
            active[account].append(key.key_id)
        elif action == "revoke" and active[account]:
            try:
                client.keys.RevokeKey(
                    pb.RevokeKeyRequest(key_id=active[account].pop(0), reason="refund"),
                    metadata=Client.as_("ops"),
                    timeout=10,
                )
            except grpc.RpcError as error:  # its period has ended: nothing changes
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        elif action == "sweep":
            clock.advance(days=number)
            service.sweeper().sweep_once()
        else:
            clock.advance(days=number)
        head = service.app.store.max_notification_id() or 0
        recorded.append((clock(), {a: live(client, a, head) for a in accounts}))
        clock.advance(minutes=1)

    for instant, answers in recorded:
        for account, (summary, allowance) in answers.items():
            then_summary, then_allowance = at(client, account, instant)
            assert answer_only(then_summary) == answer_only(summary), (instant, account)
            assert answer_only(then_allowance) == answer_only(allowance), (instant, account)
            assert then_summary.as_of.ToDatetime().replace(tzinfo=instant.tzinfo) == instant
            assert then_summary.position >= 1
    for account in accounts:
        before, allowance_before = at(client, account, first - timedelta(days=1))
        assert not before.active and before.seats == 0 and not before.entitlements
        assert not allowance_before.can_create_connection and allowance_before.seats == 0


def test_an_as_of_in_the_future_is_invalid_argument(
    world: tuple[Client, Service], clock: FakeClock
) -> None:
    client, _ = world
    with pytest.raises(grpc.RpcError) as failure:
        at(client, "pit-future", clock() + timedelta(seconds=1))
    error = rich(failure.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "as_of" in error.violations


def test_an_as_of_inside_the_settle_horizon_is_invalid_argument_and_just_outside_is_answered(
    world: tuple[Client, Service], clock: FakeClock
) -> None:
    client, service = world
    horizon = timedelta(seconds=service.settings.settle_seconds)  # lock timeout + max offset
    with pytest.raises(grpc.RpcError) as failure:
        at(client, "pit-settling", clock() - horizon + timedelta(milliseconds=1))
    error = rich(failure.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "as_of" in error.violations
    assert "in the past" in error.violations["as_of"]
    summary, _ = at(client, "pit-settling", clock() - horizon)
    assert not summary.active
