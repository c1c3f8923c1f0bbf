"""The Plan aggregate decides what a provider's events mean, whatever order they arrive in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from license_svc.domain.plan import Plan, PlanKind, ProviderEvent
from license_svc.domain.tiers import Product, Tier

T0 = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


def provider_event(n: int, kind: PlanKind, **changes: object) -> ProviderEvent:
    starts = T0 + relativedelta(months=n)
    event = ProviderEvent(
        billing_event_id=f"evt_{n:02d}_{kind.value}",
        subscription_id="sub_1",
        account_id="acct-1",
        product=Product.INTEGRATIONS,
        tier=Tier.GROWTH,
        seats=3,
        kind=kind,
        period_starts_at=starts,
        period_ends_at=starts + relativedelta(months=1),
        occurred_at=starts + timedelta(seconds=n),
    )
    return replace(event, **changes)  # type: ignore[arg-type]


def a_year() -> list[ProviderEvent]:
    """Twelve events of one plan: started, renewed, a change to Scale, then cancel at period end."""
    events = [provider_event(0, PlanKind.STARTED)]
    events += [provider_event(n, PlanKind.RENEWED) for n in range(1, 6)]
    events.append(provider_event(6, PlanKind.CHANGED, tier=Tier.SCALE, seats=5))
    events += [provider_event(n, PlanKind.RENEWED, tier=Tier.SCALE, seats=5) for n in range(7, 11)]
    cancel = provider_event(10, PlanKind.CANCELLED, tier=Tier.SCALE, seats=5)
    events.append(
        replace(
            cancel, cancel_at_period_end=True, occurred_at=cancel.occurred_at + timedelta(days=3)
        )
    )
    assert len(events) == 12
    return events


def deliver(events: list[ProviderEvent]) -> Plan:
    plan = Plan.start(uuid4(), events[0], T0)
    for incoming in events[1:]:
        plan.record(incoming, T0)
    return plan


def state(plan: Plan) -> tuple[object, ...]:
    return (plan.kind, plan.tier, plan.seats, plan.period_starts_at, plan.ends_at, plan.seen)


@settings(max_examples=200, deadline=None)
@given(st.permutations(a_year()))
def test_every_delivery_order_ends_in_the_state_of_the_ordered_delivery(shuffled):
    assert state(deliver(list(shuffled))) == state(deliver(a_year()))


def test_a_repeated_event_records_nothing():
    first = provider_event(0, PlanKind.STARTED)
    plan = Plan.start(uuid4(), first, T0)
    assert plan.record(first, T0) is False
    assert plan.record(first, T0) is False
    assert len(plan.collect_events()) == 1


def test_an_older_event_is_recorded_as_ignored_and_changes_nothing():
    plan = Plan.start(uuid4(), provider_event(2, PlanKind.RENEWED), T0)
    before = state(plan)
    assert plan.record(provider_event(0, PlanKind.STARTED), T0) is True
    ignored = plan.collect_events()[-1]
    assert isinstance(ignored, Plan.PlanEventIgnored)
    assert state(plan)[:5] == before[:5]


def test_a_renewal_arriving_before_its_start_starts_the_plan():
    renewal = provider_event(1, PlanKind.RENEWED)
    plan = Plan.start(uuid4(), renewal, T0)
    assert plan.is_active(renewal.period_starts_at + timedelta(days=1))


def test_cancel_at_period_end_keeps_the_plan_until_the_end():
    plan = Plan.start(uuid4(), provider_event(0, PlanKind.STARTED), T0)
    cancel = provider_event(0, PlanKind.CANCELLED, cancel_at_period_end=True)
    plan.record(replace(cancel, occurred_at=cancel.occurred_at + timedelta(days=2)), T0)
    end = cancel.period_ends_at
    assert plan.is_active(end - timedelta(seconds=1))
    assert not plan.is_active(end)
    assert plan.expire(end - timedelta(seconds=1)) is False
    assert plan.expire(end) is True
    assert plan.expire(end + timedelta(days=1)) is False


def test_an_immediate_cancel_ends_the_plan_when_it_occurred():
    plan = Plan.start(uuid4(), provider_event(0, PlanKind.STARTED), T0)
    cancel = provider_event(0, PlanKind.CANCELLED)
    at = cancel.occurred_at + timedelta(days=5)
    plan.record(replace(cancel, occurred_at=at), T0)
    assert plan.ends_at == at
    assert not plan.is_active(at)
    assert plan.is_active(at - timedelta(seconds=1))


def test_a_renewal_after_expiry_makes_the_plan_active_again():
    plan = Plan.start(uuid4(), provider_event(0, PlanKind.STARTED), T0)
    assert plan.expire(plan.ends_at)
    renewal = provider_event(1, PlanKind.RENEWED)
    plan.record(renewal, T0)
    assert not plan.expired
    assert plan.is_active(renewal.period_starts_at)


def test_an_event_for_another_account_is_ignored():
    plan = Plan.start(uuid4(), provider_event(0, PlanKind.STARTED), T0)
    plan.record(provider_event(1, PlanKind.RENEWED, account_id="acct-2"), T0)
    assert isinstance(plan.collect_events()[-1], Plan.PlanEventIgnored)
    assert plan.account_id == "acct-1"
