"""The watch's clock heap against real Postgres and views: a channel's deadline (the end of its
account's period, months away) leaves with the channel, so watchers that open and close on many
accounts, round after round, leave the heap bounded by the channels still open."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.reads.watch import SPARE_DEADLINES, AllowanceWatch
from projections.allowance import AllowanceView
from tests.helpers import unique
from tests.support import FakeClock

ACCOUNTS = 150


def accounts_with_year_long_keys(service: Service) -> list[str]:
    batch = service.app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.STARTER, 1, 12, ACCOUNTS, unique("req"))
    )
    accounts, last = [], 0
    for key in batch.keys:
        accounts.append(unique("acct"))
        last = service.app.activate(key.key_id, accounts[-1]).position
    service.views.read(AllowanceView, last, 60, lambda view: (None, view.position()))
    return accounts


def test_watchers_opened_and_closed_on_many_accounts_leave_the_deadline_heap_bounded(
    make_service: Callable[..., Service], clock: FakeClock
) -> None:
    service = make_service(clock)
    bootstrap.start_projections(service)
    accounts = accounts_with_year_long_keys(service)
    watch = AllowanceWatch(service.views, clock)
    after_round: list[int] = []
    most = 0

    async def one_round() -> None:
        nonlocal most
        watchers = [watch.follow(account, Product.INTEGRATIONS) for account in accounts]
        for watcher in watchers:
            published = await anext(watcher)
            assert published.answer[0].valid_until is not None  # a deadline months away
        most = max(most, watch.deadlines)
        for watcher in watchers:
            await watcher.aclose()  # type: ignore[attr-defined]  # an async generator
        after_round.append(watch.deadlines)

    async def three_rounds() -> None:
        for _ in range(3):
            await one_round()

    try:
        asyncio.run(three_rounds())
    finally:
        watch.close()
    assert most <= 2 * ACCOUNTS + SPARE_DEADLINES
    assert all(left <= SPARE_DEADLINES for left in after_round)  # was 150, 300, 450
