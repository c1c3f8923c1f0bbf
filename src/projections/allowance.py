"""Seat allowance per (account, product): the Integrations service's "may I connect?" view.

It keeps only what the answer needs (seats, tier and period of each entitlement), in tables of
its own, so it can be rebuilt, tuned and indexed apart from the summary.
"""

from __future__ import annotations

from datetime import datetime

from license_svc.domain.tiers import Product

from .entitlements import EntitlementsView
from .subscription import Subscription, subscription_at


class AllowanceView(EntitlementsView):
    name = "allowance"
    with_hint = False

    def allowance(
        self, account_id: str, product: Product, now: datetime
    ) -> tuple[Subscription, int]:
        """The subscription at `now` (seats, tier, valid_until) and the view's position."""
        read = self.for_account(account_id, product, now)
        return subscription_at(product, read.entitlements, now), read.position
