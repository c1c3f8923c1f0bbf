"""Allowance and summary reads: from the account cache when it is known current, else from the
live view (waiting for `min_position` as every read does), keeping what the view answered.

The answer is a `Subscription` at the call's `now`; it holds from that instant to its
`valid_until`, so the cache keeps it for that span (see `cache.py` for when it is current).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar, cast

from license_svc.domain.subscription import Subscription
from license_svc.domain.tiers import Product
from projections.allowance import AllowanceView
from projections.base import generation_name
from projections.entitlements import EntitlementsView
from projections.summary import SummaryView

from .live import LiveViews

V = TypeVar("V", bound=EntitlementsView)
Answer = tuple[Subscription, int]


class AccountReads:
    def __init__(self, views: LiveViews) -> None:
        self._views = views
        self._cache = views.cache

    def allowance(
        self, account_id: str, product: Product, now: datetime, min_position: int, timeout: float
    ) -> Answer:
        return self._read(
            AllowanceView, self._leased, account_id, product, now, min_position, timeout
        )

    def _leased(
        self, view: AllowanceView, account_id: str, product: Product, now: datetime
    ) -> Answer:
        """The view's allowance with the account's live seat leases (rules §12) at `now`."""
        found, position = view.allowance(account_id, product, now)
        account = (account_id, product.value)
        return self._views.with_leases({account: found}, now)[account], position

    def cached_allowance(
        self, account_id: str, product: Product, now: datetime, min_position: int
    ) -> Answer | None:
        """The allowance from memory if it is known current, else None (no database, no wait)."""
        return self._cached(AllowanceView, account_id, product, now, min_position)

    def summary(
        self, account_id: str, product: Product, now: datetime, min_position: int, timeout: float
    ) -> Answer:
        return self._read(
            SummaryView, SummaryView.summary, account_id, product, now, min_position, timeout
        )

    def _cached(
        self, cls: type[V], account_id: str, product: Product, now: datetime, min_position: int
    ) -> Answer | None:
        if not self._cache.enabled:
            return None
        live = generation_name(cls.name, self._views.live_generation(cls.name))
        found = self._cache.get((live, account_id, product.value), now, min_position)
        return None if found is None else (cast(Subscription, found[0]), found[1])

    def _read(
        self,
        cls: type[V],
        query: Callable[[V, str, Product, datetime], Answer],
        account_id: str,
        product: Product,
        now: datetime,
        min_position: int,
        timeout: float,
    ) -> Answer:
        found = self._cached(cls, account_id, product, now, min_position)
        if found is not None:
            return found

        def read_and_keep(view: V) -> Answer:
            ticket = self._cache.begin((view.full_name, account_id, product.value))
            try:
                answer, position = query(view, account_id, product, now)
            except BaseException:
                self._cache.cancel(ticket)
                raise
            self._cache.put(ticket, answer, position, now, answer.holds_until)
            return answer, position

        return self._views.read(cls, min_position, timeout, read_and_keep)
