"""The ActivationKey aggregate: its four events and the state machine of rules §3 (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from license_svc.domain import codes
from license_svc.domain.key import (
    EVENT_TYPES,
    ActivationKey,
    KeyNotAvailable,
    KeyStatus,
    NotPermitted,
    NotRevocable,
    event_type,
)
from license_svc.domain.tiers import Product, Tier

NOW = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
CODE = codes.derive(b"unit secret", b"unit scope", 0)


def issued(period_months: int = 1) -> ActivationKey:
    return ActivationKey.issue(
        uuid4(),
        product=Product.INTEGRATIONS,
        tier=Tier.GROWTH,
        seats=3,
        period_months=period_months,
        reseller_id="acme",
        batch_id=str(uuid4()),
        hint=codes.hint(CODE),
    )


def activated(account: str = "acct-1", at: datetime = NOW) -> ActivationKey:
    key = issued()
    assert key.activate(account, at)
    return key


def pending_types(key: ActivationKey) -> list[str]:
    return [type(e).__name__ for e in key.collect_events()]


def test_an_issued_key_carries_its_terms_and_no_plaintext_code() -> None:
    key = issued(period_months=12)
    assert key.status is KeyStatus.ISSUED
    assert (key.product, key.tier, key.seats, key.period_months) == (
        Product.INTEGRATIONS,
        Tier.GROWTH,
        3,
        12,
    )
    assert key.reseller_id == "acme"
    [created] = key.collect_events()
    assert type(created).__name__ == "KeyIssued"
    values = " ".join(map(str, vars(created).values()))
    assert "hint" in vars(created)
    assert CODE.text() not in values and CODE.body not in values


def test_activating_an_issued_key_starts_its_period_at_that_moment() -> None:
    key = issued(period_months=1)
    key.collect_events()
    assert key.activate("acct-1", NOW) is True
    assert key.status is KeyStatus.ACTIVATED
    assert key.account_id == "acct-1"
    assert key.activated_at == key.period_starts_at == NOW
    assert key.period_ends_at == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)
    assert pending_types(key) == ["KeyActivated"]


def test_activating_again_on_the_same_account_records_nothing() -> None:
    key = activated("acct-1")
    key.collect_events()
    assert key.activate("acct-1", NOW + timedelta(days=3)) is False
    assert key.period_starts_at == NOW
    assert pending_types(key) == []


def test_second_account_cannot_activate_a_redeemed_key() -> None:
    key = activated("acct-1")
    with pytest.raises(KeyNotAvailable):
        key.activate("acct-2", NOW)
    with pytest.raises(KeyNotAvailable):
        key.check_redeemable_by("acct-2", NOW)
    assert key.account_id == "acct-1"


def test_once_the_period_has_ended_the_key_is_not_available_even_to_its_own_account() -> None:
    key = activated("acct-1")
    assert key.period_ends_at is not None
    key.check_redeemable_by("acct-1", key.period_ends_at - timedelta(microseconds=1))
    for account in ("acct-1", "acct-2"):
        with pytest.raises(KeyNotAvailable):
            key.activate(account, key.period_ends_at)
    assert not key.is_active_for("acct-1", key.period_ends_at)


def test_a_reseller_revokes_an_unredeemed_key_and_it_can_then_not_be_activated() -> None:
    key = issued()
    key.collect_events()
    assert key.revoke(reason="refund", revoked_by="reseller:acme", by_ops=False, now=NOW)
    assert key.status is KeyStatus.REVOKED
    assert (key.revoked_reason, key.revoked_by, key.revoked_at) == ("refund", "reseller:acme", NOW)
    assert pending_types(key) == ["KeyRevoked"]
    with pytest.raises(KeyNotAvailable):
        key.activate("acct-1", NOW)
    with pytest.raises(KeyNotAvailable):
        key.check_redeemable_by("acct-1", NOW)


def test_revoking_a_revoked_key_again_changes_nothing() -> None:
    key = issued()
    key.revoke(reason="refund", revoked_by="ops", by_ops=True, now=NOW)
    key.collect_events()
    assert key.revoke(reason="again", revoked_by="ops", by_ops=True, now=NOW) is False
    assert key.revoked_reason == "refund"
    assert pending_types(key) == []


def test_a_reseller_cannot_revoke_an_activated_key() -> None:
    key = activated()
    key.collect_events()
    with pytest.raises(NotPermitted):
        key.revoke(reason="refund", revoked_by="reseller:acme", by_ops=False, now=NOW)
    assert key.status is KeyStatus.ACTIVATED
    assert pending_types(key) == []


def test_ops_can_revoke_an_activated_key_and_it_stops_being_active() -> None:
    key = activated("acct-1")
    key.collect_events()
    assert key.revoke(reason="fraud", revoked_by="ops", by_ops=True, now=NOW)
    assert key.status is KeyStatus.REVOKED
    assert pending_types(key) == ["KeyRevoked"]
    assert not key.is_active_for("acct-1", NOW)
    with pytest.raises(KeyNotAvailable):
        key.activate("acct-1", NOW)


def test_an_activated_key_expires_once_at_the_end_of_its_period() -> None:
    key = activated()
    key.collect_events()
    ends = key.period_ends_at
    assert ends is not None
    assert key.expire(ends - timedelta(microseconds=1)) is False
    assert key.expire(ends + timedelta(days=2)) is True
    assert key.status is KeyStatus.EXPIRED
    assert key.expired_at == ends
    assert key.expire(ends + timedelta(days=3)) is False
    assert pending_types(key) == ["SubscriptionExpired"]


def test_an_issued_or_revoked_key_never_expires() -> None:
    fresh, revoked = issued(), issued()
    revoked.revoke(reason="r", revoked_by="ops", by_ops=True, now=NOW)
    far = NOW + timedelta(days=365 * 10)
    assert fresh.expire(far) is False and fresh.status is KeyStatus.ISSUED
    assert revoked.expire(far) is False and revoked.status is KeyStatus.REVOKED


def test_an_expired_key_can_be_neither_revoked_nor_activated() -> None:
    key = activated("acct-1")
    assert key.period_ends_at is not None
    later = key.period_ends_at + timedelta(days=1)
    key.expire(later)
    for by_ops in (True, False):
        with pytest.raises(NotRevocable):
            key.revoke(reason="r", revoked_by="ops", by_ops=by_ops, now=later)
    with pytest.raises(KeyNotAvailable):
        key.activate("acct-1", later)


def test_replaying_the_events_rebuilds_the_same_key() -> None:
    key = issued()
    key.activate("acct-1", NOW)
    assert key.period_ends_at is not None
    key.expire(key.period_ends_at)
    events = key.collect_events()
    assert [type(e).__name__ for e in events] == [
        "KeyIssued",
        "KeyActivated",
        "SubscriptionExpired",
    ]
    rebuilt = None
    for stored in events:
        rebuilt = stored.mutate(rebuilt)
    assert isinstance(rebuilt, ActivationKey)
    assert (rebuilt.id, rebuilt.version, rebuilt.status) == (key.id, 3, KeyStatus.EXPIRED)
    assert (rebuilt.account_id, rebuilt.period_ends_at) == (key.account_id, key.period_ends_at)


def test_the_four_event_types_have_the_bare_names_of_the_spec() -> None:
    assert EVENT_TYPES == ("KeyIssued", "KeyActivated", "KeyRevoked", "SubscriptionExpired")
    for name in EVENT_TYPES:
        assert event_type(f"license_svc.domain.key:ActivationKey.{name}") == name
        assert event_type(getattr(ActivationKey, name).__qualname__) == name
