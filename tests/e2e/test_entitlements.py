"""EntitlementService, ListKeys and GetProjectionStatus over a real channel, with the views kept by
projection workers in the server's process and time moved by an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich, unique
from tests.support import Client, FakeClock

WAIT = 30.0  # the deadline a read gives the views to reach its position


@pytest.fixture
def api(serve_projected: Callable[..., tuple[Client, Service]]) -> Client:
    return serve_projected()[0]


def summary(client: Client, account: str, position: int = 0) -> pb.SubscriptionSummary:
    answer: pb.SubscriptionSummary = client.entitlements.GetSubscriptionSummary(
        pb.GetSubscriptionSummaryRequest(
            account_id=account, product=pb.PRODUCT_INTEGRATIONS, min_position=position
        ),
        metadata=client.as_("integrations"),
        timeout=WAIT,
    )
    return answer


def allowance(client: Client, account: str, in_use: int = 0, position: int = 0) -> pb.SeatAllowance:
    answer: pb.SeatAllowance = client.entitlements.GetSeatAllowance(
        pb.GetSeatAllowanceRequest(
            account_id=account,
            product=pb.PRODUCT_INTEGRATIONS,
            connections_in_use=in_use,
            min_position=position,
        ),
        metadata=client.as_("integrations"),
        timeout=WAIT,
    )
    return answer


def activate_new_key(client: Client, account: str, tier: int, seats: int, months: int) -> int:
    issued = client.issue(tier=tier, seats=seats, period_months=months)
    return client.activate(issued.keys[0].code, account).position


def revoke_by_ops(client: Client, key_id: str) -> int:
    answer = client.keys.RevokeKey(
        pb.RevokeKeyRequest(key_id=key_id, reason="refund"), metadata=client.as_("ops"), timeout=10
    )
    return int(answer.position)


def test_keys_stack_until_a_period_ends_and_nothing_is_left_once_ops_revokes(
    api: Client, clock: FakeClock
) -> None:
    account = unique("acct")
    activate_new_key(api, account, pb.TIER_GROWTH, 3, 12)
    position = activate_new_key(api, account, pb.TIER_STARTER, 2, 1)

    stacked = summary(api, account, position)
    assert (stacked.active, stacked.tier, stacked.seats) == (True, pb.TIER_GROWTH, 5)
    assert (stacked.invoices_per_month, stacked.sync) == (3_000, "Near real-time + auto retry")
    assert sorted(e.seats for e in stacked.entitlements) == [2, 3]
    assert all(e.hint.startswith("INT-") and e.key_id for e in stacked.entitlements)
    assert stacked.position >= position

    clock.advance(days=32)  # the Starter month has ended; no sweeper has run
    growth_only = summary(api, account)
    assert (growth_only.active, growth_only.tier, growth_only.seats) == (True, pb.TIER_GROWTH, 3)
    assert [e.tier for e in growth_only.entitlements] == [pb.TIER_GROWTH]

    position = revoke_by_ops(api, growth_only.entitlements[0].key_id)
    revoked = summary(api, account, position)
    assert (revoked.active, revoked.seats, revoked.tier) == (False, 0, pb.TIER_UNSPECIFIED)
    assert list(revoked.entitlements) == []


def test_the_allowance_says_whether_one_more_connection_fits(api: Client) -> None:
    account = unique("acct")
    activate_new_key(api, account, pb.TIER_SCALE, 2, 6)
    position = activate_new_key(api, account, pb.TIER_GROWTH, 3, 12)

    four_of_five = allowance(api, account, in_use=4, position=position)
    assert (four_of_five.seats, four_of_five.tier, four_of_five.active) == (5, pb.TIER_SCALE, True)
    assert (four_of_five.can_create_connection, four_of_five.remaining) == (True, 1)
    five_of_five = allowance(api, account, in_use=5)
    assert (five_of_five.can_create_connection, five_of_five.remaining) == (False, 0)
    assert five_of_five.position >= position


def test_an_unknown_account_has_no_seats(api: Client) -> None:
    nobody = allowance(api, unique("nobody"))
    assert (nobody.seats, nobody.active, nobody.can_create_connection) == (0, False, False)
    assert (nobody.remaining, nobody.tier) == (0, pb.TIER_UNSPECIFIED)
    assert not nobody.HasField("valid_until")


def test_valid_until_is_the_next_change_of_the_allowance(api: Client, clock: FakeClock) -> None:
    account = unique("acct")
    started = clock()
    activate_new_key(api, account, pb.TIER_GROWTH, 3, 12)
    position = activate_new_key(api, account, pb.TIER_STARTER, 2, 1)

    both = allowance(api, account, position=position)
    assert both.valid_until.ToDatetime(tzinfo=UTC) == started + _months(1)

    clock.set(started + _months(1))  # the Starter period ends at exactly this instant
    one = allowance(api, account)
    assert one.seats == 3
    assert one.valid_until.ToDatetime(tzinfo=UTC) == started + _months(12)

    clock.set(started + _months(12))
    none = allowance(api, account)
    assert (none.seats, none.active) == (0, False)
    assert not none.HasField("valid_until")


def _months(n: int) -> timedelta:
    """From the FakeClock's start (2026-01-31 09:30 UTC), clamped as rules §3 says."""
    ends = {
        1: datetime(2026, 2, 28, 9, 30, tzinfo=UTC),
        12: datetime(2027, 1, 31, 9, 30, tzinfo=UTC),
    }
    return ends[n] - datetime(2026, 1, 31, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("activated_at", "months", "ends_at"),
    [
        (datetime(2026, 1, 31, 9, 30, tzinfo=UTC), 1, datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
        (datetime(2028, 2, 29, 23, 15, tzinfo=UTC), 12, datetime(2029, 2, 28, 23, 15, tzinfo=UTC)),
        (datetime(2025, 12, 31, 0, 5, tzinfo=UTC), 2, datetime(2026, 2, 28, 0, 5, tzinfo=UTC)),
    ],
    ids=["jan31+1", "feb29+12", "dec31+2"],
)
def test_a_period_shown_in_the_summary_runs_whole_calendar_months_in_utc(
    api: Client, clock: FakeClock, activated_at: datetime, months: int, ends_at: datetime
) -> None:
    clock.set(activated_at)
    account = unique("acct")
    position = activate_new_key(api, account, pb.TIER_STARTER, 1, months)
    [entitlement] = summary(api, account, position).entitlements
    assert entitlement.period_starts_at.ToDatetime(tzinfo=UTC) == activated_at
    assert entitlement.period_ends_at.ToDatetime(tzinfo=UTC) == ends_at


def test_a_read_beyond_the_views_answers_deadline_exceeded(api: Client) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        api.entitlements.GetSeatAllowance(
            pb.GetSeatAllowanceRequest(
                account_id=unique("acct"), product=pb.PRODUCT_INTEGRATIONS, min_position=2**62
            ),
            metadata=api.as_("integrations"),
            timeout=0.5,
        )
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_read_with_no_deadline_waits_at_most_the_configured_cap(
    make_service: Callable[..., Service], serve_in_process: Callable[[Service], Client]
) -> None:
    client = serve_in_process(make_service(max_wait_seconds=0.2))
    with pytest.raises(grpc.RpcError) as raised:
        client.entitlements.GetSubscriptionSummary(
            pb.GetSubscriptionSummaryRequest(
                account_id=unique("acct"), product=pb.PRODUCT_INTEGRATIONS, min_position=2**62
            ),
            metadata=client.as_("portal"),
        )
    assert rich(raised.value).reason == "POSITION_NOT_REACHED"


def test_a_reseller_lists_its_own_keys_page_by_page(api: Client) -> None:
    mine = api.issue(count=5, tier=pb.TIER_STARTER, seats=1)
    api.issue(count=2, reseller="globex")
    activated = api.activate(mine.keys[0].code, unique("acct"))
    batch_ids: list[str] = []
    seen: list[str] = []
    token = ""
    while True:
        page = api.keys.ListKeys(
            pb.ListKeysRequest(
                page_size=2, page_token=token, batch_id=mine.batch_id, min_position=mine.position
            ),
            metadata=api.as_("acme"),
            timeout=WAIT,
        )
        assert len(page.keys) <= 2
        seen += [k.key_id for k in page.keys]
        batch_ids += [k.batch_id for k in page.keys]
        token = page.next_page_token
        if not token:
            break
    assert seen == [k.key_id for k in mine.keys]
    assert set(batch_ids) == {mine.batch_id}

    issued_only = api.keys.ListKeys(
        pb.ListKeysRequest(
            batch_id=mine.batch_id,
            status=pb.KEY_STATUS_ISSUED,
            min_position=activated.position,  # read our own activation, not a view behind it
        ),
        metadata=api.as_("acme"),
        timeout=WAIT,
    )
    assert [k.key_id for k in issued_only.keys] == [k.key_id for k in mine.keys[1:]]


def test_a_reseller_sees_none_of_another_resellers_keys(api: Client) -> None:
    theirs = api.issue(count=3, reseller="globex")
    listed = api.keys.ListKeys(
        pb.ListKeysRequest(batch_id=theirs.batch_id, min_position=theirs.position),
        metadata=api.as_("acme"),
        timeout=WAIT,
    )
    assert list(listed.keys) == []
    with pytest.raises(grpc.RpcError) as raised:
        api.keys.ListKeys(
            pb.ListKeysRequest(reseller_id="globex"), metadata=api.as_("acme"), timeout=WAIT
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    audited = api.keys.ListKeys(
        pb.ListKeysRequest(reseller_id="globex", batch_id=theirs.batch_id),
        metadata=api.as_("auditor"),
        timeout=WAIT,
    )
    assert [k.key_id for k in audited.keys] == [k.key_id for k in theirs.keys]


def test_an_ended_period_is_listed_as_expired_before_any_sweep(
    api: Client, clock: FakeClock
) -> None:
    issued = api.issue(count=1, period_months=1)
    position = api.activate(issued.keys[0].code, unique("acct")).position
    clock.advance(days=40)
    [key] = api.keys.ListKeys(
        pb.ListKeysRequest(batch_id=issued.batch_id, min_position=position),
        metadata=api.as_("ops"),
        timeout=WAIT,
    ).keys
    assert key.status == pb.KEY_STATUS_EXPIRED
    assert key.expired_at == key.period_ends_at


def test_projection_status_reports_each_views_position_and_lag(api: Client) -> None:
    position = api.issue(count=1).position
    summary(api, unique("acct"), position)
    status = api.ops.GetProjectionStatus(
        pb.GetProjectionStatusRequest(), metadata=api.as_("ops"), timeout=WAIT
    )
    assert {p.name for p in status.projections} == {"summary", "allowance", "catalog"}
    assert status.head_position >= position
    for view in status.projections:
        assert view.lag == view.head_position - view.position >= 0
    assert next(p for p in status.projections if p.name == "summary").position >= position
