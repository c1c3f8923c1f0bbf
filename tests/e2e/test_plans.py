"""Plans bought online (BillingService) stack with activation keys in one summary and allowance,
over a real channel, with the views kept in the server's process and time moved by an injected
clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import grpc
import psycopg
import pytest
from dateutil.relativedelta import relativedelta
from google.protobuf import timestamp_pb2

from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.e2e.test_entitlements import activate_new_key, allowance, summary
from tests.helpers import EVENTS_TABLE, rich, unique
from tests.support import Client, FakeClock


@pytest.fixture
def plans(serve_projected: Callable[..., tuple[Client, Service]]) -> tuple[Client, Service]:
    return serve_projected()


def stamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def plan_event(
    account: str,
    subscription: str,
    kind: pb.PlanEventKind,
    starts: datetime,
    *,
    occurred: datetime | None = None,
    months: int = 1,
    tier: pb.Tier = pb.TIER_GROWTH,
    seats: int = 3,
    event_id: str | None = None,
    at_period_end: bool = False,
) -> pb.RecordPlanEventRequest:
    return pb.RecordPlanEventRequest(
        billing_event_id=event_id or unique("evt"),
        subscription_id=subscription,
        account_id=account,
        product=pb.PRODUCT_INTEGRATIONS,
        tier=tier,
        seats=seats,
        kind=kind,
        period_starts_at=stamp(starts),
        period_ends_at=stamp(starts + relativedelta(months=months)),
        occurred_at=stamp(occurred or starts),
        cancel_at_period_end=at_period_end,
    )


def record(
    client: Client, request: pb.RecordPlanEventRequest, role: str = "billing"
) -> pb.RecordPlanEventResponse:
    answer: pb.RecordPlanEventResponse = client.billing.RecordPlanEvent(
        request, metadata=client.as_(role), timeout=30
    )
    return answer


def test_a_plan_and_a_key_stack_then_each_ends_on_its_own(
    plans: tuple[Client, Service], clock: FakeClock
) -> None:
    api, _ = plans
    account, subscription = unique("acct"), unique("sub")
    now = clock()
    started = record(api, plan_event(account, subscription, pb.PLAN_EVENT_KIND_STARTED, now))
    position = activate_new_key(api, account, pb.TIER_STARTER, 2, 1)

    both = summary(api, account, max(position, started.position))
    assert (both.active, both.tier, both.seats) == (True, pb.TIER_GROWTH, 5)
    sources = sorted((e.source, e.seats) for e in both.entitlements)
    assert sources == [(pb.ENTITLEMENT_SOURCE_KEY, 2), (pb.ENTITLEMENT_SOURCE_PLAN, 3)]
    [plan] = [e for e in both.entitlements if e.source == pb.ENTITLEMENT_SOURCE_PLAN]
    assert plan.subscription_id == subscription

    # The key was activated a moment after the plan started, for a month: renew the plan
    # first, then let the key's month pass.
    renewal_start = now + relativedelta(months=1)
    renewed = record(
        api, plan_event(account, subscription, pb.PLAN_EVENT_KIND_RENEWED, renewal_start)
    )
    assert not renewed.ignored
    clock.set(renewal_start + timedelta(hours=1))
    after = allowance(api, account, position=renewed.position)
    assert (after.active, after.seats, after.tier) == (True, 3, pb.TIER_GROWTH)
    moved = summary(api, account, renewed.position)
    [plan] = moved.entitlements
    assert plan.period_ends_at.ToDatetime() == (renewal_start + relativedelta(months=1)).replace(
        tzinfo=None
    )


def test_the_same_billing_event_five_times_is_one_event_with_one_answer(
    plans: tuple[Client, Service], clock: FakeClock, sql: psycopg.Connection
) -> None:
    api, _ = plans
    account, subscription = unique("acct"), unique("sub")
    request = plan_event(account, subscription, pb.PLAN_EVENT_KIND_STARTED, clock())
    answers = [record(api, request) for _ in range(5)]
    assert len({(a.plan_id, a.position) for a in answers}) == 1
    assert [a.duplicate for a in answers] == [False, True, True, True, True]
    plan_id = answers[0].plan_id
    [(count,)] = sql.execute(
        f"SELECT count(*) FROM {EVENTS_TABLE} WHERE originator_id = %s", (plan_id,)
    ).fetchall()
    assert count == 1


def test_cancel_at_period_end_keeps_the_plan_until_the_end_and_the_sweeper_expires_it_once(
    plans: tuple[Client, Service], clock: FakeClock, sql: psycopg.Connection
) -> None:
    api, service = plans
    account, subscription = unique("acct"), unique("sub")
    starts = clock()
    record(api, plan_event(account, subscription, pb.PLAN_EVENT_KIND_STARTED, starts))
    cancelled = record(
        api,
        plan_event(
            account,
            subscription,
            pb.PLAN_EVENT_KIND_CANCELLED,
            starts,
            occurred=starts + timedelta(days=3),
            at_period_end=True,
        ),
    )
    clock.set(starts + timedelta(days=20))
    assert allowance(api, account, position=cancelled.position).active
    clock.set(starts + relativedelta(months=1))
    assert not allowance(api, account, position=cancelled.position).active
    sweeper = service.sweeper()
    assert sweeper.sweep_once().expired >= 1  # other tests' plans may be due too
    sweeper.sweep_once()
    [(count,)] = sql.execute(
        f"SELECT count(*) FROM {EVENTS_TABLE} WHERE originator_id = %s"
        " AND topic LIKE '%%SubscriptionExpired'",
        (cancelled.plan_id,),
    ).fetchall()
    assert count == 1


def test_an_immediate_cancel_ends_the_plan_now(plans: tuple[Client, Service], clock: FakeClock):
    api, _ = plans
    account, subscription = unique("acct"), unique("sub")
    starts = clock()
    record(api, plan_event(account, subscription, pb.PLAN_EVENT_KIND_STARTED, starts))
    clock.set(starts + timedelta(days=4))
    cancel = plan_event(
        account, subscription, pb.PLAN_EVENT_KIND_CANCELLED, starts, occurred=clock()
    )
    answer = record(api, cancel)
    assert not allowance(api, account, position=answer.position).active


def test_a_late_older_event_is_recorded_but_never_rolls_the_plan_back(
    plans: tuple[Client, Service], clock: FakeClock
) -> None:
    api, _ = plans
    account, subscription = unique("acct"), unique("sub")
    starts = clock()
    changed = record(
        api,
        plan_event(
            account,
            subscription,
            pb.PLAN_EVENT_KIND_CHANGED,
            starts,
            occurred=starts + timedelta(hours=2),
            tier=pb.TIER_SCALE,
            seats=7,
        ),
    )
    late = record(api, plan_event(account, subscription, pb.PLAN_EVENT_KIND_STARTED, starts))
    assert (late.ignored, late.entitlement.tier, late.entitlement.seats) == (
        True,
        pb.TIER_SCALE,
        7,
    )
    seen = allowance(api, account, position=max(changed.position, late.position))
    assert (seen.tier, seen.seats) == (pb.TIER_SCALE, 7)
    history = api.audit.GetKeyHistory(
        pb.GetKeyHistoryRequest(subscription_id=subscription),
        metadata=api.as_("auditor"),
        timeout=10,
    )
    assert [e.type for e in history.events] == ["PlanStarted", "PlanEventIgnored"]


@pytest.mark.parametrize("role", ["acme", "portal", "integrations", "auditor"])
def test_only_billing_and_ops_may_record_plan_events(
    plans: tuple[Client, Service], clock: FakeClock, role: str
) -> None:
    api, _ = plans
    request = plan_event(unique("acct"), unique("sub"), pb.PLAN_EVENT_KIND_STARTED, clock())
    with pytest.raises(grpc.RpcError) as refused:
        record(api, request, role)
    assert rich(refused.value).code == grpc.StatusCode.PERMISSION_DENIED
    assert record(api, request, "ops").position > 0


def test_a_malformed_plan_event_names_its_fields_and_records_nothing(
    plans: tuple[Client, Service],
) -> None:
    api, _ = plans
    with pytest.raises(grpc.RpcError) as refused:
        record(api, pb.RecordPlanEventRequest(seats=0))
    error = rich(refused.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    fields = set(error.violations)
    assert {"billing_event_id", "subscription_id", "account_id", "kind", "seats"} <= fields


def test_a_plan_id_is_no_key_to_get_or_revoke(plans: tuple[Client, Service], clock: FakeClock):
    api, _ = plans
    request = plan_event(unique("acct"), unique("sub"), pb.PLAN_EVENT_KIND_STARTED, clock())
    plan_id = record(api, request).plan_id
    for call in (
        lambda: api.keys.GetKey(
            pb.GetKeyRequest(key_id=plan_id), metadata=api.as_("ops"), timeout=10
        ),
        lambda: api.keys.RevokeKey(
            pb.RevokeKeyRequest(key_id=plan_id, reason="x"), metadata=api.as_("ops"), timeout=10
        ),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert rich(refused.value).code == grpc.StatusCode.NOT_FOUND


def test_a_point_in_time_summary_sees_a_plan_as_it_was_then(
    plans: tuple[Client, Service], clock: FakeClock
) -> None:
    api, _ = plans
    account, subscription = unique("acct"), unique("sub")
    starts = clock()
    record(api, plan_event(account, subscription, pb.PLAN_EVENT_KIND_STARTED, starts))
    clock.set(starts + timedelta(days=10))
    record(
        api,
        plan_event(
            account,
            subscription,
            pb.PLAN_EVENT_KIND_CHANGED,
            starts,
            occurred=clock(),
            tier=pb.TIER_SCALE,
            seats=9,
        ),
    )
    clock.set(starts + timedelta(days=12))

    def as_of(at: datetime) -> pb.SubscriptionSummary:
        request = pb.GetSubscriptionSummaryRequest(
            account_id=account, product=pb.PRODUCT_INTEGRATIONS, as_of=stamp(at)
        )
        answer: pb.SubscriptionSummary = api.entitlements.GetSubscriptionSummary(
            request, metadata=api.as_("auditor"), timeout=30
        )
        return answer

    before = as_of(starts - timedelta(seconds=1))
    assert (before.active, before.seats) == (False, 0)
    first = as_of(starts + timedelta(days=5))
    assert (first.active, first.tier, first.seats) == (True, pb.TIER_GROWTH, 3)
    assert first.entitlements[0].source == pb.ENTITLEMENT_SOURCE_PLAN
    changed = as_of(starts + timedelta(days=11))
    assert (changed.tier, changed.seats) == (pb.TIER_SCALE, 9)
