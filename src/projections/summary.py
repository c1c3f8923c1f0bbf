"""Subscription summary per (account, product): its entitlements, with hints, to list them.

rules §6: active, highest tier, summed seats, that tier's limits and the entitlements. The view
keeps the rows; `subscription.py` applies the read-time rules to them.
"""

from __future__ import annotations

from datetime import datetime

from license_svc.domain.subscription import Subscription, subscription_at
from license_svc.domain.tiers import Product

from .entitlements import EntitlementsView


class SummaryView(EntitlementsView):
    name = "summary"
    with_hint = True

    def summary(self, account_id: str, product: Product, now: datetime) -> tuple[Subscription, int]:
        """The subscription at `now` and the view's position it was read at."""
        read = self.for_account(account_id, product, now)
        return subscription_at(product, read.entitlements, now), read.position
