"""WatchSeatAllowance without an account: every account's allowance after a position, resumable.

The allowance view's change log has one row per event that changed an account's entitlements, at
that event's position, committed with the view's batch. The feed reads it in position order: each
change once, with the account's allowance as the view holds it when it is read (the consumer's
copy ends at the current answer; a later change of the same account follows as its own message).
After the history, one `caught_up`; then live changes, woken by the view's notices, and a
checkpoint each idle second. Resuming after the last position received (a change's or a
checkpoint's) yields exactly the changes not yet received: a change's position is never above the
view position read with it, and the log holds every change up to that position.

Allowances also change with no event when a period ends: each message's `valid_until` says when;
account watches push that instant, the feed does not (it would be no position of the log).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from license_svc.domain.subscription import Subscription
from license_svc.domain.tiers import Product
from projections.changes import Change

from .watch import AllowanceWatch, wait_set

PAGE = 500
CHECKPOINT_SECONDS = 1.0


@dataclass(frozen=True)
class Changed:
    change: Change
    allowance: Subscription


@dataclass(frozen=True)
class Checkpoint:
    position: int


@dataclass(frozen=True)
class CaughtUp:
    position: int


FeedItem = Changed | Checkpoint | CaughtUp


async def allowance_changes(
    watch: AllowanceWatch, after: int, product: Product | None
) -> AsyncIterator[FeedItem]:
    caught_up = False
    with watch.waker() as woken:
        while True:
            woken.clear()
            changes, head = await watch.call(watch.view.changes_after, after, product, PAGE)
            if changes:
                accounts = list(dict.fromkeys((c.account_id, c.product) for c in changes))
                answers, _ = await watch.call(watch.allowances, accounts, watch.now())
                for change in changes:
                    yield Changed(change, answers[(change.account_id, change.product)])
                after = changes[-1].position
                if len(changes) == PAGE:
                    continue  # more history, or a burst: read on at once
            after = max(after, head)  # every change up to the head was in this page
            if not caught_up:
                caught_up = True
                yield CaughtUp(after)
            elif not changes:
                yield Checkpoint(after)
            await wait_set(woken, CHECKPOINT_SECONDS)
