"""What every view shares: a batch of events and the tracking-recorder base.

A view is a `PostgresTrackingRecorder` that owns its tables. It writes a whole batch of events
(many events, one tracking row) and, in the same transaction, NOTIFYs `license_svc_views` so
that servers waiting for a position wake at commit instead of polling. The transaction is its
worker's (`viewset.py`): the views one worker keeps commit a batch together.

Generations: a view's tables are named `{name}_g{generation}_…` and its tracking table
`{name}_g{generation}_tracking`. A rebuild fills generation g+1 while readers use g, then
switches (see `generations.py`). The generation is read from the tracking table's name.
"""

from __future__ import annotations

import re
import zlib
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresRecorder, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from license_svc.adapters.application import EventStore
from license_svc.domain.key import ActivationKey
from license_svc.domain.plan import Plan
from license_svc.domain.seats import LeaseEvent, SeatLease

from .changes import Change, Notice

CHANNEL = "license_svc_views"
KEY_EVENTS = (
    ActivationKey.KeyIssued,
    ActivationKey.KeyActivated,
    ActivationKey.KeyRevoked,
    ActivationKey.SubscriptionExpired,
)
LEASE_EVENTS = (
    SeatLease.SeatLeaseGranted,
    SeatLease.SeatLeaseReleased,
    SeatLease.SeatLeaseExpired,
)
APP_NAME = EventStore.name  # the application name tracking rows are recorded under
# One advisory lock serialises DDL across processes: concurrent CREATE TABLE IF NOT EXISTS can
# collide in pg_type, and the library's tracking-table migration check is not concurrency-safe.
DDL_LOCK = zlib.crc32(b"license-svc/views/ddl")


# PostgreSQL text cannot hold a NUL, and UTF-8 cannot carry a lone surrogate. The API refuses both
# at the door, but an event stored before that (or by another writer) may hold them, and a view
# that cannot write an event stops for good. So views store U+FFFD in their place: the event in
# the store keeps the original, and ids of the API's alphabet can never collide with the result.
REPLACEMENT = "\ufffd"
_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def pg_text(value: str) -> str:
    """`value` as a text column can hold it (most values pass unchanged, at C speed)."""
    if value.isascii():
        return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
    return _UNSAFE.sub(REPLACEMENT, value)


def pg_value(value: Any) -> Any:
    """`pg_text` for text, anything else as it is (for rows of mixed columns)."""
    return pg_text(value) if isinstance(value, str) else value


def generation_name(name: str, generation: int) -> str:
    return f"{name}_g{generation}"


@dataclass
class Batch:
    """Consecutive events of the store, grouped by type. Applying the groups in the order of the
    state machine (issued, activated, revoked, expired) equals applying the events one by one,
    because each key's events occur in that order and a key is never both revoked and expired."""

    first: int
    last: int
    after: int = 0  # the view's position the batch was read from: its fence (see View.write)
    issued: list[tuple[int, ActivationKey.KeyIssued]] = field(default_factory=list)
    activated: list[ActivationKey.KeyActivated] = field(default_factory=list)
    revoked: list[ActivationKey.KeyRevoked] = field(default_factory=list)
    expired: list[ActivationKey.SubscriptionExpired] = field(default_factory=list)
    plans: list[Plan.Event] = field(default_factory=list)  # plans bought online, in order
    leases: list[LeaseEvent] = field(default_factory=list)  # seat leases, in order
    # Each event's position, by (aggregate id, version): where its account's answer changed.
    positions: dict[tuple[UUID, int], int] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Sequence[tuple[Any, Tracking]], after: int = 0) -> Batch:
        batch = cls(
            first=items[0][1].notification_id, last=items[-1][1].notification_id, after=after
        )
        for event, tracking in items:
            batch.positions[(event.originator_id, event.originator_version)] = (
                tracking.notification_id
            )
            if isinstance(event, ActivationKey.KeyIssued):
                batch.issued.append((tracking.notification_id, event))
            elif isinstance(event, ActivationKey.KeyActivated):
                batch.activated.append(event)
            elif isinstance(event, ActivationKey.KeyRevoked):
                batch.revoked.append(event)
            elif isinstance(event, ActivationKey.SubscriptionExpired):
                batch.expired.append(event)
            elif isinstance(event, Plan.Event):
                batch.plans.append(event)
            elif isinstance(event, LEASE_EVENTS):
                batch.leases.append(event)
            # Any other event is still covered by the batch's tracking row.
        return batch

    @property
    def tracking(self) -> Tracking:
        return Tracking(APP_NAME, self.last)

    def position_of(self, event: Any) -> int:
        return self.positions[(event.originator_id, event.originator_version)]


# One aggregate's events in version order, each with its position: what a rebuild's fold
# (`projections.workers.fold`) hands a view, all of an aggregate's events at once.
Aggregate = list[tuple[int, Any]]


class Folder(Protocol):
    """A view's side of a rebuild's fold: each aggregate's events folded into the rows they
    leave, written once (no row inserted and then updated), in the fold's one transaction."""

    events: tuple[type, ...]  # the events it folds: no other event is decoded
    # The attributes it reads of an event of each class (beside its id and version): only these
    # are decoded. An event of a class not named here is decoded whole.
    reads: Mapping[type, tuple[str, ...]]
    # The tables it only copies rows into (never reads, never upserts): their primary keys and
    # unique constraints are added once the rows are in (`fold._defer_unique`).
    copied: tuple[str, ...]

    def write(self, curs: Cursor[DictRow], aggregates: Sequence[Aggregate]) -> None:
        """The rows of these aggregates, each aggregate whole (its events up to the fold's
        head); every aggregate comes once in the whole fold."""

    def finish(self, curs: Cursor[DictRow]) -> None:
        """After the last aggregate: what is kept across aggregates (the catalog's counts)."""


class View(PostgresTrackingRecorder):
    """Base of the three views. Subclasses name their tables and write a batch."""

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]  # suffixes of the data tables, tracking excluded

    def __init__(
        self, datastore: PostgresDatastore, *, tracking_table_name: str, **kwargs: Any
    ) -> None:
        super().__init__(datastore, tracking_table_name=tracking_table_name, **kwargs)
        self.full_name = tracking_table_name.removesuffix("_tracking")
        self.generation = int(self.full_name.rsplit("_g", 1)[1])
        self.sql_create_statements.extend(self.create_statements())
        self.read_indexes = self.read_index_statements()
        self._qualified = f'"{datastore.schema}"."{tracking_table_name}"'
        self._select_position = SQL(
            "SELECT max(notification_id) AS position FROM {} WHERE application_name = %s"
        ).format(self.tracking)
        # The fence: the row moves from exactly the batch's starting position to its end, or
        # nothing is returned. A concurrent writer's committed move is seen under READ COMMITTED
        # (the upsert waits for the row, then re-checks its WHERE against the new version).
        self._fenced_tracking = SQL(
            "INSERT INTO {t} (application_name, notification_id) VALUES (%(app)s, %(last)s)"
            " ON CONFLICT (application_name) DO UPDATE SET notification_id = %(last)s"
            " WHERE {t}.notification_id = %(after)s AND %(after)s < %(last)s"
            " RETURNING notification_id"
        ).format(t=self.tracking)

    @classmethod
    def at(cls, datastore: PostgresDatastore, generation: int) -> View:
        return cls(
            datastore, tracking_table_name=generation_name(cls.name, generation) + "_tracking"
        )

    def table(self, suffix: str) -> Identifier:
        return Identifier(self.datastore.schema, f"{self.full_name}_{suffix}")

    @property
    def tracking(self) -> Identifier:
        return Identifier(self.datastore.schema, self.tracking_table_name)

    def table_names(self) -> list[str]:
        return [f"{self.full_name}_{suffix}" for suffix in self.tables]

    @abstractmethod
    def create_statements(self) -> list[Composed]:
        """The tables, and the indexes that writing a batch uses."""

    def read_index_statements(self) -> list[Composed]:
        """The indexes only reads use. A rebuild builds them once its replay has caught up:
        one sort each over the filled table, where a replay into them would insert into each
        of them for every event (for the catalog, half of a rebuild's database time)."""
        return []

    @abstractmethod
    def _write(self, curs: Cursor[DictRow], batch: Batch) -> None: ...

    @abstractmethod
    def folder(self) -> Folder:
        """A fold of this view (see `Folder`): it must leave exactly the rows the batches of
        one event each leave (`_write`, `_account_changes`, `_keep_changes`)."""

    def _account_changes(self, curs: Cursor[DictRow], batch: Batch) -> list[Change] | None:
        """What this batch changes for which accounts, found before it is written (the notice
        names them, so servers keep caching the others); None: not known."""
        return None

    def _keep_changes(self, curs: Cursor[DictRow], changes: list[Change]) -> None:
        """After the batch is written: a view that keeps a change log writes it here."""

    # -- writing ---------------------------------------------------------------------------

    def write(self, curs: Cursor[DictRow], batch: Batch) -> None:
        """The batch's changes, its tracking row and the wake-up notice, in the caller's
        transaction (see `viewset.py`). The tracking row is fenced on the position the batch
        was read from: it moves only from `batch.after` to `batch.last`, else IntegrityError
        and nothing commits. Requiring only a higher position (the library's rule) let a stale
        runner whose lock session had died commit a batch overlapping its successor's, and the
        count tables added the overlap twice."""
        changes = self._account_changes(curs, batch)
        self._write(curs, batch)
        if changes:
            self._keep_changes(curs, changes)
        self._fence_tracking(curs, batch)
        accounts = None if changes is None else frozenset(c.account_id for c in changes)
        notice = Notice(self.full_name, batch.first, batch.last, accounts)
        curs.execute("SELECT pg_notify(%s, %s)", (CHANNEL, notice.encode()), prepare=True)

    def _fence_tracking(self, curs: Cursor[DictRow], batch: Batch) -> None:
        self._check_has_multi_row_tracking_table(curs)
        params = {"app": APP_NAME, "after": batch.after, "last": batch.last}
        curs.execute(self._fenced_tracking, params, prepare=True)
        if curs.fetchone() is None:
            raise IntegrityError(
                f"{self.full_name}: the tracking row moved from {batch.after} before this batch"
                f" ({batch.first}-{batch.last}) committed: another runner applied it"
            )

    def create_table(self, read_indexes: bool = True) -> None:
        """The view's tables and the indexes its writes use; and, unless `read_indexes` is
        False (a rebuild's replay: see `create_read_indexes`), the indexes its reads use."""
        with self.datastore.get_connection() as conn, ddl_lock(conn):
            found = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL AS found", (self._qualified,)
            ).fetchone()
            if found and found["found"]:
                super().create_table()
            else:
                # The library probes the tracking table first (its migration check), which
                # logs an ERROR in PostgreSQL's log for every new generation. A missing table
                # needs no migration: create it as the library does once the probe failed.
                PostgresRecorder.create_table(self)
            for statement in self.read_indexes if read_indexes else ():
                conn.execute(statement)  # under the same lock, on the same connection

    def create_read_indexes(self, parallel: int) -> None:
        """The indexes of `read_index_statements` that are missing, built `parallel` at a time
        (each on a connection of its own: a build is a sort on one core, and two builds on one
        table share its SHARE lock), under the DDL lock. A rebuild's, after its replay."""
        if not self.read_indexes:
            return
        with (
            self.datastore.get_connection() as conn,
            ddl_lock(conn),
            ThreadPoolExecutor(parallel, thread_name_prefix="read-index") as builders,
        ):
            list(builders.map(self._create_index, self.read_indexes))

    def _create_index(self, statement: Composed) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute(statement)

    # -- reading ---------------------------------------------------------------------------

    def position(self) -> int:
        with self.datastore.get_connection() as conn:
            row = conn.execute(self._select_position, (APP_NAME,), prepare=True).fetchone()
        return int(row["position"] or 0) if row else 0

    def position_subquery(self) -> Composable:
        """`(SELECT max(...) ...) p`: joined into every read so rows and position agree."""
        return SQL(
            "(SELECT coalesce(max(notification_id), 0) AS position FROM {} "
            "WHERE application_name = {}) p"
        ).format(self.tracking, APP_NAME)

    def ids_of_account(self, suffix: str, column: str, account_id: str) -> tuple[list[UUID], int]:
        """The `column` of every row of the `suffix` table on the account, and the view's
        position in the same statement."""
        statement = SQL(
            "SELECT p.position, a.{column} FROM {position} LEFT JOIN {rows} a ON a.account_id = %s"
        ).format(
            column=Identifier(column), position=self.position_subquery(), rows=self.table(suffix)
        )
        with self.datastore.get_connection() as conn:
            rows = conn.execute(statement, (account_id,)).fetchall()
        ids = [row[column] for row in rows if row[column] is not None]
        return ids, int(rows[0]["position"]) if rows else 0


@contextmanager
def ddl_lock(conn: Any) -> Iterator[None]:
    conn.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (DDL_LOCK,))
