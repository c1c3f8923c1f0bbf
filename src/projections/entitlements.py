"""The tables the summary and allowance views both keep: each in tables of its own.

`…_pending` holds what an unredeemed key would grant (KeyActivated does not repeat tier and
seats); `…_entitlements` holds every activated key that was neither revoked nor marked expired.
A period that has ended is filtered out when read, so the view never depends on the sweeper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from license_svc.domain.key import ActivationKey
from license_svc.domain.plan import Plan
from license_svc.domain.subscription import Entitlement
from license_svc.domain.tiers import Product, Tier

from .base import KEY_EVENTS, Aggregate, Batch, Folder, View, pg_text, pg_value
from .changes import Change

# A pending key's row (key_id, product, tier, seats, hint), copied in binary as the catalog's.
PENDING_TYPES = ("uuid", "text", "text", "int4", "text")
PLAN_SNAPSHOTS = (Plan.PlanStarted, Plan.PlanRenewed, Plan.PlanChanged, Plan.PlanCancelled)
# An entitlement's row as a rebuild's fold copies it: key_id, account_id, product, tier, seats,
# starts_at, ends_at, source, subscription_id and (the summary's) hint.
ENTITLEMENT_COLUMNS = (
    "key_id, account_id, product, tier, seats, starts_at, ends_at, source, subscription_id"
)
ENTITLEMENT_TYPES: tuple[str, ...] = ("uuid", "text", "text", "text", "int4", "timestamptz")
ENTITLEMENT_TYPES += ("timestamptz", "text", "text", "text")


@dataclass(frozen=True)
class AccountEntitlements:
    """What a view held for one (account, product) when it answered, and its position."""

    entitlements: tuple[Entitlement, ...]
    position: int


class EntitlementsView(View):
    tables: ClassVar[tuple[str, ...]] = ("pending", "entitlements", "plan_accounts")
    with_hint: ClassVar[bool]

    def create_statements(self) -> list[Composed]:
        hint = SQL(", hint text NOT NULL") if self.with_hint else SQL("")
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (key_id uuid PRIMARY KEY, product text NOT NULL,"
                " tier text NOT NULL, seats integer NOT NULL{})"
            ).format(self.table("pending"), hint),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (key_id uuid PRIMARY KEY,"
                " account_id text NOT NULL, product text NOT NULL, tier text NOT NULL,"
                " seats integer NOT NULL, starts_at timestamptz NOT NULL,"
                " ends_at timestamptz NOT NULL{})"
            ).format(self.table("entitlements"), hint),
            # Plans bought online stand beside keys (added later: tables made before gain them).
            # Only when a column is missing: an ALTER TABLE takes an ACCESS EXCLUSIVE lock even
            # when it changes nothing, and on every start it could deadlock with a worker.
            SQL(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM information_schema.columns"
                " WHERE table_schema = {schema} AND table_name = {name}"
                " AND column_name = 'subscription_id') THEN"
                " ALTER TABLE {table} ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'key',"
                " ADD COLUMN IF NOT EXISTS subscription_id text NOT NULL DEFAULT '';"
                " END IF; END $$"
            ).format(
                schema=Literal(self.datastore.schema or "public"),
                name=Literal(f"{self.full_name}_entitlements"),
                table=self.table("entitlements"),
            ),
            # Every plan an account ever had (kept after it ends): point-in-time reads look here.
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (plan_id uuid PRIMARY KEY, account_id text NOT NULL)"
            ).format(self.table("plan_accounts")),
        ]

    def read_index_statements(self) -> list[Composed]:
        return [
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (account_id, product)").format(
                Identifier(f"{self.full_name}_by_account"), self.table("entitlements")
            ),
            SQL(
                "CREATE INDEX IF NOT EXISTS {} ON {} (ends_at, key_id) WHERE source = 'plan'"
            ).format(Identifier(f"{self.full_name}_plans_by_end"), self.table("entitlements")),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (account_id)").format(
                Identifier(f"{self.full_name}_plan_accounts_by_account"),
                self.table("plan_accounts"),
            ),
        ]

    @cached_property
    def _select_for_account(self) -> bytes:
        """Rendered once per view: composing it on every read cost a third of a read's CPU."""
        statement = SQL(
            "SELECT p.position, e.key_id, e.tier, e.seats, e.starts_at, e.ends_at,"
            " e.source, e.subscription_id{hint}"
            " FROM {position} LEFT JOIN {entitlements} e"
            " ON e.account_id = %s AND e.product = %s AND e.ends_at > %s"
            " ORDER BY e.starts_at, e.key_id"
        ).format(
            hint=SQL(", e.hint") if self.with_hint else SQL(""),
            position=self.position_subquery(),
            entitlements=self.table("entitlements"),
        )
        return statement.as_bytes(None)

    @property
    def _hint_column(self) -> Composable:
        return SQL(", hint") if self.with_hint else SQL("")

    def _account_changes(self, curs: Cursor[DictRow], batch: Batch) -> list[Change]:
        """One Change per event of the batch that changes an account's entitlements, at that
        event's position; read before the batch is written, while the ended keys still have
        their rows (a revoked or expired key's event does not name its account)."""
        changes = [  # a plan's provider events name its account and product
            Change(batch.position_of(e), pg_text(e.account_id), pg_text(e.product))
            for e in batch.plans
            if isinstance(e, PLAN_SNAPSHOTS)
        ]
        ended = [*batch.revoked, *batch.expired]
        ended += [e for e in batch.plans if isinstance(e, Plan.SubscriptionExpired)]
        if not ended and not batch.activated:
            return changes
        # A key issued in this same batch is not pending yet: its product is in its event.
        issued = {e.originator_id: e.product for _, e in batch.issued}
        unknown = [e.originator_id for e in batch.activated if e.originator_id not in issued]
        rows = curs.execute(
            SQL(
                "SELECT key_id, account_id, product FROM {} WHERE key_id = ANY(%s)"
                " UNION ALL SELECT key_id, NULL, product FROM {} WHERE key_id = ANY(%s)"
            ).format(self.table("entitlements"), self.table("pending")),
            ([e.originator_id for e in ended], unknown),
        ).fetchall()
        products = {**issued, **{r["key_id"]: r["product"] for r in rows}}
        accounts = {r["key_id"]: r["account_id"] for r in rows if r["account_id"] is not None}
        for activated in batch.activated:  # its account is in the event, its product pending
            accounts[activated.originator_id] = pg_text(activated.account_id)
        for event in [*batch.activated, *ended]:
            key = event.originator_id
            if key in accounts and key in products:
                changes.append(Change(batch.position_of(event), accounts[key], products[key]))
        return sorted(changes, key=lambda c: c.position)

    def folder(self) -> Folder:
        return EntitlementsFolder(self)

    def _write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        pending, entitlements = self.table("pending"), self.table("entitlements")
        if batch.issued:
            copy_sql = SQL(
                "COPY {} (key_id, product, tier, seats{}) FROM STDIN (FORMAT BINARY)"
            ).format(pending, self._hint_column)
            with curs.copy(copy_sql) as copy:
                copy.set_types(PENDING_TYPES[: 5 if self.with_hint else 4])
                for _, e in batch.issued:
                    row = (e.originator_id, pg_text(e.product), pg_text(e.tier), e.seats)
                    copy.write_row((*row, pg_text(e.hint)) if self.with_hint else row)
        if batch.activated:
            # Move each redeemed key from pending to entitlements, with its period.
            curs.execute(
                SQL(
                    "WITH a AS (SELECT * FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[],"
                    " %s::timestamptz[]) AS a(key_id, account_id, starts_at, ends_at)),"
                    " gone AS (DELETE FROM {pending} p USING a WHERE p.key_id = a.key_id"
                    " RETURNING p.*)"
                    " INSERT INTO {entitlements} (key_id, account_id, product, tier, seats,"
                    " starts_at, ends_at{hint})"
                    " SELECT a.key_id, a.account_id, gone.product, gone.tier, gone.seats,"
                    " a.starts_at, a.ends_at{gone_hint} FROM a JOIN gone USING (key_id)"
                ).format(
                    pending=pending,
                    entitlements=entitlements,
                    hint=self._hint_column,
                    gone_hint=SQL(", gone.hint") if self.with_hint else SQL(""),
                ),
                (
                    [e.originator_id for e in batch.activated],
                    [pg_text(e.account_id) for e in batch.activated],
                    [e.period_starts_at for e in batch.activated],
                    [e.period_ends_at for e in batch.activated],
                ),
            )
        ended = [e.originator_id for e in [*batch.revoked, *batch.expired]]
        if ended:
            curs.execute(
                SQL("DELETE FROM {} WHERE key_id = ANY(%s)").format(entitlements), (ended,)
            )
        if batch.revoked:  # a reseller may revoke a key nobody redeemed
            revoked = [e.originator_id for e in batch.revoked]
            curs.execute(SQL("DELETE FROM {} WHERE key_id = ANY(%s)").format(pending), (revoked,))
        if batch.plans:
            self._write_plans(curs, batch.plans)

    def _write_plans(self, curs: Cursor[DictRow], events: list[Plan.Event]) -> None:
        """Each plan's row as its last event in the batch leaves it: every applied provider
        event carries the whole plan, an expiry removes the row, an ignored event changes
        nothing."""
        started = [e for e in events if isinstance(e, Plan.PlanStarted)]
        if started:
            curs.execute(
                SQL(
                    "INSERT INTO {} (plan_id, account_id) SELECT * FROM unnest(%s::uuid[],"
                    " %s::text[]) ON CONFLICT (plan_id) DO NOTHING"
                ).format(self.table("plan_accounts")),
                (
                    [e.originator_id for e in started],
                    [pg_value(e.account_id) for e in started],
                ),
            )
        final: dict[UUID, Plan.Event] = {}
        for e in events:
            if not isinstance(e, Plan.PlanEventIgnored):
                final[e.originator_id] = e
        rows = [e for e in final.values() if not isinstance(e, Plan.SubscriptionExpired)]
        gone = [e.originator_id for e in final.values() if isinstance(e, Plan.SubscriptionExpired)]
        entitlements = self.table("entitlements")
        if gone:
            curs.execute(SQL("DELETE FROM {} WHERE key_id = ANY(%s)").format(entitlements), (gone,))
        if rows:
            curs.execute(
                SQL(
                    "INSERT INTO {} AS e (key_id, account_id, product, tier, seats, starts_at,"
                    " ends_at, source, subscription_id{hint})"
                    " SELECT key_id, account_id, product, tier, seats, starts_at, ends_at, 'plan',"
                    " subscription_id{empty_hint} FROM unnest(%s::uuid[], %s::text[], %s::text[],"
                    " %s::text[], %s::integer[], %s::timestamptz[], %s::timestamptz[], %s::text[])"
                    " AS p(key_id, account_id, product, tier, seats, starts_at, ends_at,"
                    " subscription_id)"
                    " ON CONFLICT (key_id) DO UPDATE SET tier = excluded.tier,"
                    " seats = excluded.seats, starts_at = excluded.starts_at,"
                    " ends_at = excluded.ends_at"
                ).format(
                    entitlements,
                    hint=self._hint_column,
                    empty_hint=SQL(", ''") if self.with_hint else SQL(""),
                ),
                tuple(
                    [pg_value(getattr(e, name)) for e in rows]
                    for name in [
                        "originator_id",
                        "account_id",
                        "product",
                        "tier",
                        "seats",
                        "period_starts_at",
                        "ends_at",
                        "subscription_id",
                    ]
                ),
            )

    def plans_of_account(self, account_id: str) -> tuple[list[UUID], int]:
        """Every plan the account ever had, and the view's position when it answered."""
        return self.ids_of_account("plan_accounts", "plan_id", account_id)

    def due_plans(self, now: datetime, limit: int) -> list[UUID]:
        """Plans whose end has passed and whose SubscriptionExpired the view has not seen."""
        statement = SQL(
            "SELECT key_id FROM {} WHERE source = 'plan' AND ends_at <= %s"
            " ORDER BY ends_at, key_id LIMIT %s"
        ).format(self.table("entitlements"))
        with self.datastore.get_connection() as conn:
            rows = conn.execute(statement, (now, limit)).fetchall()
        return [row["key_id"] for row in rows]

    def for_account(self, account_id: str, product: Product, now: datetime) -> AccountEntitlements:
        """The account's entitlements whose period has not ended at `now`, with the position
        of the view in the same statement, so the two always agree."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                self._select_for_account, (account_id, product.value, now), prepare=True
            ).fetchall()
        found = tuple(
            Entitlement(
                key_id=row["key_id"],
                account_id=account_id,
                product=product,
                tier=Tier(row["tier"]),
                seats=row["seats"],
                period_starts_at=row["starts_at"],
                period_ends_at=row["ends_at"],
                hint=row.get("hint") or "",
                source=row["source"],
                subscription_id=row["subscription_id"],
            )
            for row in rows
            if row["key_id"] is not None
        )
        return AccountEntitlements(found, int(rows[0]["position"]) if rows else 0)


class EntitlementsFolder:
    """A rebuild's fold of the summary or allowance: the pending keys, the entitlements (keys'
    and plans') and the plans' accounts as each aggregate's events leave them, copied once;
    and, where the view keeps a change log, its rows (one per event that changed an account's
    entitlements, as `_account_changes` finds them one event at a time)."""

    events: tuple[type, ...] = (*KEY_EVENTS, Plan.Event)
    reads: Mapping[type, tuple[str, ...]] = {
        ActivationKey.KeyIssued: ("product", "tier", "seats", "hint"),
        ActivationKey.KeyActivated: ("account_id", "period_starts_at", "period_ends_at"),
        ActivationKey.KeyRevoked: (),
        ActivationKey.SubscriptionExpired: (),
    }  # a plan's events are decoded whole
    copied: tuple[str, ...] = ("pending", "entitlements", "plan_accounts")

    def __init__(self, view: EntitlementsView, keeps_changes: bool = False) -> None:
        self.view = view
        self.hint = view.with_hint
        # The change log's rows (position, account, product), where the view keeps one.
        self.changes: list[tuple[int, str, str]] | None = [] if keeps_changes else None

    def write(self, curs: Cursor[DictRow], aggregates: Sequence[Aggregate]) -> None:
        pending: list[tuple[Any, ...]] = []
        entitled: list[list[Any]] = []
        accounts: list[tuple[Any, ...]] = []
        for events in aggregates:
            first = events[0][1]
            if isinstance(first, KEY_EVENTS):
                self._key(events, pending, entitled)
            elif isinstance(first, Plan.Event):
                self._plan(events, entitled, accounts)
            else:
                self._other(events)
        width = 5 if self.hint else 4
        self._copy(curs, "pending", "key_id, product, tier, seats", PENDING_TYPES[:width],
                   [row[:width] for row in pending])  # fmt: skip
        width = 10 if self.hint else 9
        self._copy(curs, "entitlements", ENTITLEMENT_COLUMNS, ENTITLEMENT_TYPES[:width],
                   [row[:width] for row in entitled])  # fmt: skip
        self._copy(curs, "plan_accounts", "plan_id, account_id", ("uuid", "text"), accounts)

    def _copy(
        self,
        curs: Cursor[DictRow],
        suffix: str,
        columns: str,
        types: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        if not rows:
            return
        if self.hint and suffix in ("pending", "entitlements"):
            columns += ", hint"
        copy_sql = SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)")
        with curs.copy(copy_sql.format(self.view.table(suffix), SQL(columns))) as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)

    def _change(self, position: int, account_id: str, product: str) -> None:
        if self.changes is not None:
            self.changes.append((position, account_id, product))

    def _key(
        self, events: Aggregate, pending: list[tuple[Any, ...]], entitled: list[list[Any]]
    ) -> None:
        """The batch statements one event at a time: issued → pending; activated → moved from
        pending to entitlements with its period; revoked → out of both; expired → out of the
        entitlements. An ending changes the account only if the key was entitled."""
        waiting: tuple[Any, ...] | None = None  # key_id, product, tier, seats, hint
        row: list[Any] | None = None
        for position, e in events:
            if isinstance(e, ActivationKey.KeyIssued):
                waiting = (e.originator_id, pg_text(e.product), pg_text(e.tier), e.seats,
                           pg_text(e.hint))  # fmt: skip
            elif isinstance(e, ActivationKey.KeyActivated):
                if waiting is not None:
                    key_id, product, tier, seats, hint = waiting
                    row = [key_id, pg_text(e.account_id), product, tier, seats,
                           e.period_starts_at, e.period_ends_at, "key", "", hint]  # fmt: skip
                    self._change(position, row[1], product)
                    waiting = None
            elif isinstance(e, ActivationKey.KeyRevoked | ActivationKey.SubscriptionExpired):
                if row is not None:
                    self._change(position, row[1], row[2])
                    row = None
                if isinstance(e, ActivationKey.KeyRevoked):
                    waiting = None
        if waiting is not None:
            pending.append(waiting)
        if row is not None:
            entitled.append(row)

    def _plan(
        self, events: Aggregate, entitled: list[list[Any]], accounts: list[tuple[Any, ...]]
    ) -> None:
        """`_write_plans` one event at a time: a start records the plan's account; each applied
        provider event inserts the plan's row or moves its tier, seats and period; an expiry
        removes it; an ignored event changes nothing."""
        row: list[Any] | None = None
        account: tuple[Any, ...] | None = None
        for position, e in events:
            if isinstance(e, Plan.PlanStarted) and account is None:
                account = (e.originator_id, pg_value(e.account_id))
            if isinstance(e, PLAN_SNAPSHOTS):
                self._change(position, pg_text(e.account_id), pg_text(e.product))
                if row is None:
                    row = [e.originator_id, pg_value(e.account_id), pg_value(e.product),
                           pg_value(e.tier), e.seats, e.period_starts_at, e.ends_at, "plan",
                           pg_value(e.subscription_id), ""]  # fmt: skip
                else:
                    row[3:7] = [pg_value(e.tier), e.seats, e.period_starts_at, e.ends_at]
            elif isinstance(e, Plan.SubscriptionExpired) and row is not None:
                self._change(position, row[1], row[2])
                row = None
        if account is not None:
            accounts.append(account)
        if row is not None:
            entitled.append(row)

    def _other(self, events: Aggregate) -> None:
        """Another aggregate's events (a seat lease's, for the allowance)."""

    def finish(self, curs: Cursor[DictRow]) -> None:
        pass
