"""Seat allowance per (account, product): the Integrations service's "may I connect?" view.

It keeps only what the answer needs (seats, tier and period of each entitlement), in tables of
its own, so it can be rebuilt, tuned and indexed apart from the summary. It also keeps the change
log behind `WatchSeatAllowance`'s feed: one row per event that changed an account's entitlements
or its seat leases (a grant, a release, an expiry: `seats_leased`), at that event's position,
written with the batch — so the log is exactly as complete as the view and the same however the
events were batched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from license_svc.domain.seats import LeaseEvent, SeatLease
from license_svc.domain.subscription import Entitlement, Subscription, subscription_at
from license_svc.domain.tiers import Product, Tier

from .base import LEASE_EVENTS, Aggregate, Batch, Folder, pg_text
from .changes import Change
from .entitlements import EntitlementsFolder, EntitlementsView

Account = tuple[str, str]  # (account_id, product)
CHANGE_TYPES = ("int8", "text", "text")  # a change log row, copied in binary
LEASE_TYPES = ("uuid", "text", "text", "timestamptz", "timestamptz")  # a lease row, the same


class AllowanceView(EntitlementsView):
    name = "allowance"
    with_hint = False
    tables: ClassVar[tuple[str, ...]] = (*EntitlementsView.tables, "changes", "leases")

    def create_statements(self) -> list[Composed]:
        return [
            *super().create_statements(),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (position bigint PRIMARY KEY,"
                " account_id text NOT NULL, product text NOT NULL)"
            ).format(self.table("changes")),
            # Every seat lease's span as its events tell it (granted, and ended once released
            # or recorded expired): point-in-time reads count `seats_leased` at T from here.
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (lease_id uuid PRIMARY KEY,"
                " account_id text NOT NULL, product text NOT NULL,"
                " granted_at timestamptz NOT NULL, ended_at timestamptz)"
            ).format(self.table("leases")),
        ]

    def read_index_statements(self) -> list[Composed]:
        return [
            *super().read_index_statements(),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (account_id, product, granted_at)").format(
                Identifier(f"{self.full_name}_leases_by_account"), self.table("leases")
            ),
        ]

    def folder(self) -> Folder:
        return AllowanceFolder(self)

    def _write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        super()._write(curs, batch)
        if batch.leases:
            self._write_leases(curs, batch.leases)

    def _write_leases(self, curs: Cursor[DictRow], events: list[LeaseEvent]) -> None:
        """Each lease's row as the batch leaves it. A lease granted and ended in the same batch
        (a connection that came and went, or a replay's chunk) is written once, ended, instead
        of inserted and then updated: on a conflict (its row is there already) the end is
        still recorded, as the UPDATE would have."""
        granted: dict[UUID, list[object]] = {}  # account, product, granted at, ended at
        ended: dict[UUID, datetime] = {}
        for e in events:
            if isinstance(e, SeatLease.SeatLeaseGranted):
                granted[e.originator_id] = [
                    pg_text(e.account_id),
                    pg_text(e.product),
                    e.granted_at,
                    None,
                ]
                continue
            at = e.released_at if isinstance(e, SeatLease.SeatLeaseReleased) else e.expired_at
            if e.originator_id in granted:
                granted[e.originator_id][3] = at
            else:
                ended[e.originator_id] = at
        if granted:
            rows = [(lease, *row) for lease, row in granted.items()]
            curs.execute(
                SQL(
                    "INSERT INTO {} AS l (lease_id, account_id, product, granted_at, ended_at)"
                    " SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[],"
                    " %s::timestamptz[], %s::timestamptz[])"
                    " ON CONFLICT (lease_id) DO UPDATE SET ended_at = excluded.ended_at"
                    " WHERE excluded.ended_at IS NOT NULL"
                ).format(self.table("leases")),
                tuple(list(column) for column in zip(*rows, strict=True)),
            )
        if ended:
            curs.execute(
                SQL(
                    "UPDATE {} l SET ended_at = e.ended_at FROM unnest(%s::uuid[],"
                    " %s::timestamptz[]) AS e(lease_id, ended_at) WHERE l.lease_id = e.lease_id"
                ).format(self.table("leases")),
                (list(ended), list(ended.values())),
            )

    def lease_spans(
        self, account_id: str, product: Product, at: datetime
    ) -> tuple[dict[UUID, tuple[datetime, datetime | None]], int]:
        """The account's leases granted by `at` (granted, ended), and the view's position."""
        statement = SQL(
            "SELECT p.position, l.lease_id, l.granted_at, l.ended_at FROM {position}"
            " LEFT JOIN {leases} l ON l.account_id = %s AND l.product = %s AND l.granted_at <= %s"
        ).format(position=self.position_subquery(), leases=self.table("leases"))
        with self.datastore.get_connection() as conn:
            rows = conn.execute(statement, (account_id, product.value, at)).fetchall()
        spans = {
            row["lease_id"]: (row["granted_at"], row["ended_at"])
            for row in rows
            if row["lease_id"] is not None
        }
        return spans, int(rows[0]["position"]) if rows else 0

    def _account_changes(self, curs: Cursor[DictRow], batch: Batch) -> list[Change]:
        """The entitlements' changes and, for `seats_leased`, each seat lease granted or ended
        (each lease event names its account): a watcher hears of those, never of a renewal,
        which is no event."""
        changes = super()._account_changes(curs, batch)
        if not batch.leases:
            return changes
        leases = [
            Change(batch.position_of(e), pg_text(e.account_id), pg_text(e.product))
            for e in batch.leases
        ]
        return sorted([*changes, *leases], key=lambda c: c.position)

    def _keep_changes(self, curs: Cursor[DictRow], changes: list[Change]) -> None:
        copy_sql = SQL("COPY {} (position, account_id, product) FROM STDIN (FORMAT BINARY)")
        with curs.copy(copy_sql.format(self.table("changes"))) as copy:
            copy.set_types(CHANGE_TYPES)
            for change in changes:
                copy.write_row((change.position, change.account_id, change.product))

    def allowance(
        self, account_id: str, product: Product, now: datetime
    ) -> tuple[Subscription, int]:
        """The subscription at `now` (seats, tier, valid_until) and the view's position."""
        read = self.for_account(account_id, product, now)
        return subscription_at(product, read.entitlements, now), read.position

    # -- the change feed ---------------------------------------------------------------------

    def changes_after(
        self, after: int, product: Product | None, limit: int
    ) -> tuple[list[Change], int]:
        """The next `limit` changes after position `after` (of one product, or all), and the
        view's position in the same statement: every change up to it is in the log."""
        statement = SQL(
            "SELECT p.position AS head, c.position, c.account_id, c.product FROM {position}"
            " LEFT JOIN LATERAL (SELECT * FROM {changes} WHERE position > %s"
            " AND (%s::text IS NULL OR product = %s) ORDER BY position LIMIT %s) c ON true"
            " ORDER BY c.position"
        ).format(position=self.position_subquery(), changes=self.table("changes"))
        chosen = product.value if product else None
        with self.datastore.get_connection() as conn:
            rows = conn.execute(statement, (after, chosen, chosen, limit)).fetchall()
        found = [
            Change(row["position"], row["account_id"], row["product"])
            for row in rows
            if row["position"] is not None
        ]
        return found, int(rows[0]["head"]) if rows else 0

    def allowances(
        self, accounts: list[Account], now: datetime
    ) -> tuple[dict[Account, Subscription], int]:
        """Several accounts' subscriptions at `now` in one statement, and the view's position."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            held, position = self.entitlements_in(curs, accounts, now)
        answers = {
            account: subscription_at(Product(account[1]), entitlements, now)
            for account, entitlements in held.items()
        }
        return answers, position

    @cached_property
    def _select_for_accounts(self) -> bytes:
        """`entitlements_in`'s statement, rendered once per view (as `_select_for_account`)."""
        return (
            SQL(
                "SELECT p.position, a.account_id, a.product, e.key_id, e.tier, e.seats,"
                " e.starts_at, e.ends_at FROM {position}"
                " CROSS JOIN unnest(%s::text[], %s::text[]) AS a(account_id, product)"
                " LEFT JOIN {entitlements} e ON e.account_id = a.account_id"
                " AND e.product = a.product AND e.ends_at > %s"
            )
            .format(position=self.position_subquery(), entitlements=self.table("entitlements"))
            .as_bytes(None)
        )

    def entitlements_in(
        self, curs: Cursor[DictRow], accounts: list[Account], now: datetime
    ) -> tuple[dict[Account, list[Entitlement]], int]:
        """Several accounts' entitlements not ended at `now`, and the view's position, read in
        the caller's transaction (seat leases count against them under the account's lock)."""
        rows = curs.execute(
            self._select_for_accounts,
            ([a for a, _ in accounts], [p for _, p in accounts], now),
            prepare=True,
        ).fetchall()
        held: dict[Account, list[Entitlement]] = {account: [] for account in accounts}
        for row in rows:
            if row["key_id"] is not None:
                product = Product(row["product"])
                held[(row["account_id"], row["product"])].append(
                    Entitlement(
                        key_id=row["key_id"],
                        account_id=row["account_id"],
                        product=product,
                        tier=Tier(row["tier"]),
                        seats=row["seats"],
                        period_starts_at=row["starts_at"],
                        period_ends_at=row["ends_at"],
                    )
                )
        return held, int(rows[0]["position"]) if rows else 0


class AllowanceFolder(EntitlementsFolder):
    """The entitlements' fold, and the allowance's own: each seat lease's row (granted, and
    ended by its release or expiry) and the change log, a row for every lease event."""

    events: tuple[type, ...] = (*EntitlementsFolder.events, *LEASE_EVENTS)
    reads: Mapping[type, tuple[str, ...]] = {
        **EntitlementsFolder.reads,
        SeatLease.SeatLeaseGranted: ("account_id", "product", "granted_at"),
        SeatLease.SeatLeaseReleased: ("account_id", "product", "released_at"),
        SeatLease.SeatLeaseExpired: ("account_id", "product", "expired_at"),
    }
    copied = (*EntitlementsFolder.copied, "changes", "leases")

    def __init__(self, view: AllowanceView) -> None:
        super().__init__(view, keeps_changes=True)
        self.leases: list[list[Any]] = []

    def write(self, curs: Cursor[DictRow], aggregates: Sequence[Aggregate]) -> None:
        super().write(curs, aggregates)
        self._copy(curs, "leases", "lease_id, account_id, product, granted_at, ended_at",
                   LEASE_TYPES, self.leases)  # fmt: skip
        self._copy(
            curs, "changes", "position, account_id, product", CHANGE_TYPES, self.changes or []
        )
        self.leases, self.changes = [], []

    def _other(self, events: Aggregate) -> None:
        row: list[Any] | None = None
        for position, e in events:
            if not isinstance(e, LEASE_EVENTS):
                continue
            self._change(position, pg_text(e.account_id), pg_text(e.product))
            if isinstance(e, SeatLease.SeatLeaseGranted):
                if row is None:
                    row = [e.originator_id, pg_text(e.account_id), pg_text(e.product),
                           e.granted_at, None]  # fmt: skip
            elif row is not None:
                row[4] = (
                    e.released_at if isinstance(e, SeatLease.SeatLeaseReleased) else e.expired_at
                )
        if row is not None:
            self.leases.append(row)
