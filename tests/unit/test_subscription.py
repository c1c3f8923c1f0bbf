"""The read-time rules of a subscription (rules §3, §6): stacking, ended periods, valid_until."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from license_svc.domain.subscription import Entitlement, subscription_at
from license_svc.domain.tiers import Product, Tier

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entitlement(tier: Tier, seats: int, starts: timedelta, ends: timedelta) -> Entitlement:
    return Entitlement(
        key_id=uuid4(),
        account_id="acct",
        product=Product.INTEGRATIONS,
        tier=tier,
        seats=seats,
        period_starts_at=NOW + starts,
        period_ends_at=NOW + ends,
    )


def test_keys_stack_seats_and_take_the_highest_tier_with_its_limits() -> None:
    growth = entitlement(Tier.GROWTH, 3, timedelta(days=-10), timedelta(days=300))
    starter = entitlement(Tier.STARTER, 2, timedelta(days=-5), timedelta(days=20))
    found = subscription_at(Product.INTEGRATIONS, [starter, growth], NOW)
    assert (found.active, found.tier, found.seats) == (True, Tier.GROWTH, 5)
    assert found.limits is not None and found.limits.invoices_per_month == 3_000
    assert found.entitlements == (growth, starter)  # oldest first


def test_a_period_that_ends_now_is_not_counted() -> None:
    ended = entitlement(Tier.SCALE, 10, timedelta(days=-30), timedelta(0))
    found = subscription_at(Product.INTEGRATIONS, [ended], NOW)
    assert (found.active, found.seats, found.tier, found.limits) == (False, 0, None, None)
    assert found.valid_until is None


def test_valid_until_is_the_earliest_end_or_future_start() -> None:
    long = entitlement(Tier.GROWTH, 3, timedelta(days=-1), timedelta(days=300))
    short = entitlement(Tier.STARTER, 1, timedelta(days=-1), timedelta(days=7))
    assert subscription_at(Product.INTEGRATIONS, [long, short], NOW).valid_until == NOW + timedelta(
        days=7
    )
    later = entitlement(Tier.SCALE, 5, timedelta(days=2), timedelta(days=40))
    found = subscription_at(Product.INTEGRATIONS, [long, later], NOW)
    assert (found.seats, found.valid_until) == (3, NOW + timedelta(days=2))


def test_the_allowance_leaves_room_only_below_the_seats() -> None:
    found = subscription_at(
        Product.INTEGRATIONS,
        [entitlement(Tier.GROWTH, 5, timedelta(days=-1), timedelta(days=1))],
        NOW,
    )
    assert (found.allows(4), found.remaining(4)) == (True, 1)
    assert (found.allows(5), found.remaining(5)) == (False, 0)
    assert (found.allows(7), found.remaining(7)) == (False, 0)
    nothing = subscription_at(Product.INTEGRATIONS, [], NOW)
    assert (nothing.allows(0), nothing.remaining(0)) == (False, 0)
