"""What one dashboard page shows, read for one principal: a reseller token reads only its own
reseller_id; the lag of the views and failed attempts are ops matters (as in the gRPC role table,
where GetProjectionStatus is ops-only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from license_svc.access.auth import Principal, Role
from license_svc.adapters.clock import Clock
from license_svc.attempts.limiter import AttemptLimiter
from license_svc.domain.tiers import Product
from license_svc.reads import ops
from license_svc.reads.live import LiveViews
from license_svc.reads.seat_usage import Usage, seat_usage
from license_svc.webhooks.endpoints import EndpointHealth, endpoint_health
from license_svc.webhooks.tables import WebhookTables
from projections.catalog_stats import DayRange, KeyStats

EXPIRING_ROWS = 100  # the page lists the first rows; the gRPC API pages through the rest
USAGE_DAYS, USAGE_ROWS = 7, 100  # seat use: the last week, the first rows (GetSeatUsage: more)
FAILURES_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Filters:
    reseller_id: str = ""  # '' = every reseller (ops only)
    product: Product | None = None


@dataclass(frozen=True)
class Board:
    principal: Principal
    filters: Filters
    now: datetime
    stats: KeyStats
    resellers: tuple[str, ...]  # every reseller with keys, for the ops filter
    expiring: ops.ExpiringPage
    lags: tuple[ops.Lag, ...] | None  # ops only
    failures: dict[str, int] | None  # ops only: failed attempts of the last hour by reason
    usage: Usage  # seats sold against the peak of seat leases, per account and day
    # The shown reseller's webhook endpoints (every reseller's for ops without a filter).
    webhooks: tuple[EndpointHealth, ...] = ()


@dataclass(frozen=True)
class Reads:
    """The parts the page reads from: the server's own, passed in by the composition root."""

    views: LiveViews
    limiter: AttemptLimiter
    clock: Clock
    head_position: Callable[[], int | None]

    def board(self, principal: Principal, asked: Filters) -> Board:
        is_ops = principal.role is Role.OPS
        filters = asked if is_ops else Filters(principal.reseller_id, asked.product)
        now = self.clock()
        days = ops.default_days(now.date())

        def stats(reseller_id: str) -> KeyStats:
            return ops.stats(
                self.views, reseller_id=reseller_id, product=filters.product, now=now, days=days
            )

        shown = stats(filters.reseller_id)
        everyone = stats("") if is_ops and filters.reseller_id else shown
        expiring = ops.expiring(
            self.views,
            now=now,
            before=now + ops.EXPIRING_WINDOW,
            reseller_id=filters.reseller_id,
            after=None,
            size=EXPIRING_ROWS,
        )
        return Board(
            principal=principal,
            filters=filters,
            now=now,
            stats=shown,
            resellers=tuple(sorted({c.reseller_id for c in everyone.counts})),
            expiring=expiring,
            lags=tuple(ops.lags(self.views, self.head_position)) if is_ops else None,
            failures=self.limiter.failures_by_reason(FAILURES_WINDOW) if is_ops else None,
            usage=seat_usage(
                self.views,
                reseller_id=filters.reseller_id,
                account_id="",
                days=DayRange(now.date() - timedelta(days=USAGE_DAYS - 1), now.date()),
                limit=USAGE_ROWS,
            ),
            webhooks=tuple(self._webhooks(filters.reseller_id)),
        )

    def _webhooks(self, reseller_id: str) -> list[EndpointHealth]:
        """Endpoint health from the webhooks' tables on the views' database (the same one)."""
        return endpoint_health(WebhookTables(self.views.datastore), reseller_id)
