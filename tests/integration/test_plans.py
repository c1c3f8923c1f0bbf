"""Plans recorded through the application on real Postgres: any delivery order, retries and
racing replicas of one provider event end in one state and one stored event each."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from license_svc.bootstrap import Service
from license_svc.domain.plan import Plan, ProviderEvent
from tests.helpers import unique
from tests.unit.test_plan import a_year, state


def for_subscription(events: list[ProviderEvent], subscription: str) -> list[ProviderEvent]:
    return [
        replace(
            e, subscription_id=subscription, billing_event_id=f"{subscription}/{e.billing_event_id}"
        )
        for e in events
    ]


def stored_state(service: Service, events: list[ProviderEvent]) -> tuple[object, ...]:
    for incoming in events:
        service.plans.record(incoming)
    plan = service.plans.get(service.plans.plan_id(events[0].subscription_id))
    assert isinstance(plan, Plan)
    return state(plan)[:5]


def test_a_shuffled_delivery_is_stored_as_the_ordered_one(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()
    year = a_year()
    ordered = stored_state(service, for_subscription(year, unique("sub")))

    @settings(max_examples=15, deadline=None)
    @given(order=st.permutations(range(12)))
    def check(order: list[int]) -> None:
        # The same event ids in another order: ids name events, not positions in the delivery.
        subscription = unique("sub")
        events = for_subscription(year, subscription)
        assert stored_state(service, [events[i] for i in order]) == ordered

    check()


def test_racing_copies_of_one_provider_event_store_it_once(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()
    [first] = for_subscription(a_year()[:1], unique("sub"))
    answers = []
    start = threading.Barrier(6)

    def deliver() -> None:
        start.wait()
        answers.append(service.plans.record(first))

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.duplicate for a in answers) == [False] + [True] * 5
    assert len({a.position for a in answers}) == 1
    plan_id = service.plans.plan_id(first.subscription_id)
    assert [e.type for e in service.app.history(plan_id)] == ["PlanStarted"]


def test_plan_events_stored_before_recorded_at_existed_replay_with_their_store_time(
    make_service: Callable[..., Service],
) -> None:
    """class_version 1 of the plan events had no recorded_at: an upcaster takes the event's
    timestamp. The old shape is written straight to the store, as an old release left it."""
    service = make_service()
    [first, second] = for_subscription(a_year()[:2], unique("sub"))
    plan_id = service.plans.plan_id(first.subscription_id)
    mapper = service.app.mapper
    plan = Plan.start(plan_id, first, first.occurred_at)
    plan.record(second, second.occurred_at)
    old = []
    for event in plan.collect_events():
        stored = mapper.to_stored_event(event)
        state = mapper.transcoder.decode(stored.state)
        del state["recorded_at"]
        state.pop("class_version", None)  # version 1 carried none
        old.append(replace(stored, state=mapper.transcoder.encode(state)))
    service.app.recorder.insert_events(old)

    replayed = service.plans.get(plan_id)
    assert replayed is not None
    assert (replayed.tier, replayed.ends_at) == (second.tier, second.period_ends_at)
    history = service.app.history(plan_id)
    assert [e.type for e in history] == ["PlanStarted", "PlanRenewed"]
    assert all(e.payload["recorded_at"] == e.recorded_at for e in history)
