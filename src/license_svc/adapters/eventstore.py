"""The PostgreSQL event store: the library's application recorder plus what licensing adds.

- `issue_requests` remembers each IssueKeys request (never its codes) and is written in the
  same transaction as the batch's `KeyIssued` events, so a request is either wholly minted and
  remembered or not at all; its primary key makes two racing copies of a request collide. Its
  `created_at` (the service's clock) starts the request's replay window (`keys.app`).
- `insert_issued` writes a whole IssueKeys batch with binary COPY instead of the library's
  unnest insert, keeping the library's rules: the request row first, then its table lock (so
  notification ids are assigned and committed in order), NOTIFY of its channel, one transaction.
- `insert_events` (every ordinary save) sends BEGIN, the table lock, NOTIFY, the INSERT and
  COMMIT in one pipeline with one sync, where the library syncs after the INSERT and sends COMMIT
  only once the client has read its result: the table lock (which serializes every writer) is
  then released as soon as the server reaches COMMIT, not a client round trip later. Same
  statements, same order, same errors (a duplicate version is the library's IntegrityError).
- with group commit on (the default; `GROUP_COMMIT=n` in the application's environment turns it
  off) the ordinary saves of one process that wait at the same moment are written in one such
  transaction, each keeping its own outcome (`license_svc.adapters.groupcommit`).
- `positions_of` reads an aggregate's events with their notification ids (store positions),
  which the library's `select_events` does not return.

The application picks this class through `APPLICATION_RECORDER_TOPIC`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast
from uuid import UUID, SafeUUID

from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Connection, Cursor, generators
from psycopg import Error as PsycopgError
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format, TransactionStatus
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier, Literal

from license_svc.adapters.groupcommit import (
    Append,
    GroupCommit,
    RoundTrips,
    group_insert,
    group_parameters,
    settle,
)

TOPIC = "license_svc.adapters.eventstore:LicensingRecorder"
PLAN_STARTED_TOPIC = "license_svc.domain.plan:Plan.PlanStarted"  # `get_topic(Plan.PlanStarted)`

# The library retries a failed statement 10 times 0.2 s apart, each retry a pool checkout: with
# the database gone, a call would wait ~10 checkouts. The service retries once (a pooled
# connection broken by a database restart fails once, and is then discarded), then the caller
# gets UNAVAILABLE and retries on its own terms (the answer carries RetryInfo).
_retry_once = retry((InterfaceError, OperationalError), max_attempts=2, wait=0.05)
F = TypeVar("F", bound=Callable[..., Any])


def retried(method: F) -> F:
    return cast(F, _retry_once(method))


def _unretried(method: Any) -> Any:
    """A library method without its own retry decorator (`functools.wraps` keeps it)."""
    return getattr(method, "__wrapped__", method)


_new, _set = object.__new__, object.__setattr__


class QuickUUIDLoader(Loader):
    """A binary uuid column as `uuid.UUID(bytes=...)` makes it, without that constructor's
    argument checks (`quick_uuid`: a replay loads one per event)."""

    format = Format.BINARY

    def load(self, data: Buffer) -> UUID:
        return quick_uuid(data)


# The two slots' descriptors (UUID's own `__slots__`).
_set_int = UUID.__dict__["int"].__set__
_set_safe = UUID.__dict__["is_safe"].__set__
_UNKNOWN, _from_bytes = SafeUUID.unknown, int.from_bytes  # (an Enum member's lookup is slow)


def quick_uuid(data: Buffer) -> UUID:
    """`UUID(bytes=data)` as the constructor leaves it, without its checks: its two slots set
    directly (0.25 µs instead of 0.7; a fold makes one per aggregate, a replay one per event)."""
    made = _new(UUID)
    _set_int(made, _from_bytes(data))
    _set_safe(made, _UNKNOWN)
    return made


def _bytes_loader(conn: Connection[Any]) -> type[Loader]:
    """The connection's binary bytea loader (psycopg's C one): a uuid column as its 16 bytes."""
    return conn.adapters.get_loader(conn.adapters.types["bytea"].oid, Format.BINARY)  # type: ignore[return-value]


def _notification(
    notification_id: int, originator_id: UUID, version: int, topic: str, state: bytes
) -> Notification:
    """A Notification as its dataclass `__init__` makes it, in 0.35 µs instead of 0.8 (a frozen
    dataclass sets each field through `object.__setattr__`): the library builds its domain
    events the same way (`Mapper.to_domain_event`)."""
    made = _new(Notification)
    _set(
        made,
        "__dict__",
        {
            "originator_id": originator_id,
            "originator_version": version,
            "topic": topic,
            "state": state,
            "id": notification_id,
        },
    )
    return made


def _notification_statements(
    schema: Identifier, table: Identifier
) -> dict[tuple[bool | None, bool], bytes]:
    """`select_notifications`' statements, by (inclusive of start, or None: no start; a stop)."""
    select = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{}"
    ).format(schema, table)
    starts = {None: [], True: [SQL("notification_id >= %s")], False: [SQL("notification_id > %s")]}
    statements = {}
    for start, after in starts.items():
        for stop in (False, True):
            where = [*after, *([SQL("notification_id <= %s")] if stop else [])]
            condition = SQL(" WHERE ") + SQL(" AND ").join(where) if where else SQL("")
            statement = select + condition + SQL(" ORDER BY notification_id LIMIT %s")
            statements[(start, stop)] = statement.as_bytes(None)
    return statements


@dataclass(frozen=True)
class IssueRequest:
    reseller_id: str
    request_id: str
    batch_id: UUID
    fingerprint: str  # what was asked for: same id with another fingerprint is refused
    count: int
    last_key_id: UUID
    # By the service's clock (an injected one in tests): when the replay window started.
    created_at: datetime


@dataclass(frozen=True)
class PositionedEvent:
    stored: StoredEvent
    position: int


class LicensingRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.issue_requests ("
                " reseller_id text NOT NULL,"
                " request_id text NOT NULL,"
                " batch_id uuid NOT NULL,"
                " fingerprint text NOT NULL,"
                " count integer NOT NULL,"
                " last_key_id uuid NOT NULL,"
                " created_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (reseller_id, request_id))"
            ).format(schema=schema)
        )
        # Point-in-time reads find an account's plans among the plan starts (few beside the
        # keys' events) without scanning the store.
        self.sql_create_statements.append(
            SQL(
                "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} (notification_id)"
                " WHERE topic = {topic}"
            ).format(
                index=Identifier(f"{self.events_table_name}_plan_starts"),
                schema=schema,
                table=Identifier(self.events_table_name),
                topic=Literal(PLAN_STARTED_TOPIC),
            )
        )
        self._insert_request = SQL(
            "INSERT INTO {schema}.issue_requests"
            " (reseller_id, request_id, batch_id, fingerprint, count, last_key_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (reseller_id, request_id) DO NOTHING RETURNING batch_id"
        ).format(schema=schema)
        self._select_request = SQL(
            "SELECT reseller_id, request_id, batch_id, fingerprint, count, last_key_id,"
            " created_at FROM {schema}.issue_requests WHERE reseller_id = %s AND request_id = %s"
        ).format(schema=schema)
        self._select_notifications = _notification_statements(
            schema, Identifier(self.events_table_name)
        )
        # A rebuild's fold (`projections.workers.fold`): the events up to a position in
        # aggregate order, each aggregate's events together, from where the last read stopped
        # (the primary key's own order: an index range scan, no sort).
        columns = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{}"
        ).format(schema, Identifier(self.events_table_name))
        order = SQL(" ORDER BY originator_id, originator_version LIMIT %s")
        self._select_by_aggregate = {
            first: (
                columns
                + SQL(
                    " WHERE notification_id <= %s"
                    if first
                    else " WHERE (originator_id, originator_version) > (%s, %s)"
                    " AND notification_id <= %s"
                )
                + order
            ).as_bytes(None)
            for first in (True, False)
        }
        self._copy_events = SQL(
            "COPY {schema}.{table} (originator_id, originator_version, topic, state)"
            " FROM STDIN (FORMAT BINARY)"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        self._copy_types = [self.datastore.originator_id_type, "int8", "text", "bytea"]
        self._select_positioned = SQL(
            "SELECT originator_id, originator_version, topic, state, notification_id"
            " FROM {schema}.{table} WHERE originator_id = %s ORDER BY originator_version"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        self._select_position = SQL(
            "SELECT notification_id FROM {schema}.{table}"
            " WHERE originator_id = %s AND originator_version = %s"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        # The ordinary save's statements, rendered once (the library renders its Composed
        # statements on every call). Identifiers render the same with or without a connection.
        self._append_lock = [_rendered(statement) for statement in self.lock_table_statements]
        self._append_notify = _rendered(SQL("NOTIFY {0}").format(Identifier(self.channel_name)))
        self._append_insert = _rendered(self.insert_events_statement)
        # A subclass that adds to the library's transaction (its `_insert_events` hook, as a
        # process recorder's tracking row) keeps the library's path.
        self._pipelined_append = (
            type(self)._insert_events is PostgresApplicationRecorder._insert_events
        )
        self._group_insert = _rendered(
            group_insert(
                schema, Identifier(self.events_table_name), self.datastore, self.channel_name
            )
        )
        self.group_commit: GroupCommit | None = GroupCommit(self._write_group)
        self.round_trips = RoundTrips()

    def use_group_commit(self, enabled: bool) -> None:
        self.group_commit = GroupCommit(self._write_group) if enabled else None

    def create_table(self) -> None:
        """The library runs its CREATE TYPE on every start and swallows "already exists", which
        PostgreSQL still logs as an ERROR each time. Leave the statement out when the type is
        there (start-up holds the schema lock, `bootstrap.schema_lock`, so nobody creates it
        in between)."""
        statements = self.sql_create_statements
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                "SELECT to_regtype(%s) IS NOT NULL AS found",
                (f'"{self.datastore.schema}"."{self.stored_event_type_name}"',),
            ).fetchone()
        if row is not None and row["found"]:
            self.sql_create_statements = [
                s for s in statements if "CREATE TYPE" not in s.as_string()
            ]
        try:
            super().create_table()
        finally:
            self.sql_create_statements = statements

    @retried
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events or self.datastore.enable_db_functions or not self._pipelined_append:
            insert = _unretried(PostgresApplicationRecorder.insert_events)
            ids: Sequence[int] | None = insert(self, stored_events, **kwargs)
            return ids
        if self.group_commit is not None:  # (an application recorder has no tracking)
            return self.group_commit.append(stored_events)
        return self._append(stored_events, **kwargs)

    @retried
    def select_events(self, originator_id: UUID | str, **kwargs: Any) -> Sequence[StoredEvent]:
        select = _unretried(PostgresApplicationRecorder.select_events)
        events: Sequence[StoredEvent] = select(self, originator_id, **kwargs)
        return events

    @retried
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """The library's query and answer, read leaner: binary rows as tuples (a bytea comes
        as bytes, not hex text to decode), one statement per shape rendered once. A replay
        reads every event through here: the library's dict rows cost it 1.3 µs an event."""
        if topics:
            return cast(
                Sequence[Notification],
                _unretried(PostgresApplicationRecorder.select_notifications)(
                    self, start, limit, stop, topics, inclusive_of_start=inclusive_of_start
                ),
            )
        params = [p for p in (start, stop) if p is not None]
        statement = self._select_notifications[
            (None if start is None else inclusive_of_start, stop is not None)
        ]
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as curs,
        ):
            curs.adapters.register_loader("uuid", QuickUUIDLoader)
            curs.execute(statement, (*params, limit), prepare=True)
            return [_notification(*row) for row in curs.fetchall()]

    @retried
    def select_by_aggregate(
        self, after: tuple[UUID, int] | None, head: int, limit: int
    ) -> list[tuple[int, bytes, int, str, bytes]]:
        """Up to `limit` events at positions up to `head`, ordered by aggregate id then version,
        after the event `after` (an aggregate id and version; None: from the first), as rows
        (position, the aggregate id's 16 bytes, version, topic, state): a fold makes one UUID
        per aggregate, not one per event, and no Notification."""
        params = (head, limit) if after is None else (*after, head, limit)
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as curs,
        ):
            curs.adapters.register_loader("uuid", _bytes_loader(conn))
            curs.execute(self._select_by_aggregate[after is None], params, prepare=True)
            return curs.fetchall()

    @retried
    def max_notification_id(self) -> int | None:
        head: int | None = _unretried(PostgresApplicationRecorder.max_notification_id)(self)
        return head

    def _append(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's insert transaction in one round trip (see `_transact`)."""
        make = self.construct_pg_stored_event
        pg_stored_events = [
            make(e.originator_id, e.originator_version, e.topic, e.state) for e in stored_events
        ]
        rows = self._transact(self._append_insert, (pg_stored_events,))
        return [row["notification_id"] for row in rows]

    def _write_group(self, group: list[Append]) -> None:
        """One transaction for a group of appends (see `groupcommit`)."""
        if group:
            rows = self._transact(self._group_insert, group_parameters(group), notify=False)
            settle(group, rows)

    def _transact(
        self, insert_statement: bytes, parameters: Sequence[Any], notify: bool = True
    ) -> list[DictRow]:
        """BEGIN, SET LOCAL lock_timeout, LOCK TABLE … IN EXCLUSIVE MODE, NOTIFY, the INSERT …
        RETURNING, COMMIT, then one sync: the INSERT's rows. Ids are still issued under the
        lock, so in commit order."""
        with self.datastore.get_connection() as conn:
            assert conn.autocommit  # BEGIN and COMMIT are ours
            began = time.perf_counter()
            error: PsycopgError | None = None
            rows: list[DictRow] = []
            try:
                with conn.pipeline() as pipeline:
                    try:
                        with conn.cursor() as curs, conn.cursor() as insert:
                            curs.execute(b"BEGIN")
                            for statement in self._append_lock:
                                curs.execute(statement, prepare=True)
                            if notify:  # else the INSERT notifies (a group's: `group_insert`)
                                curs.execute(self._append_notify)
                            insert.execute(insert_statement, parameters)
                            curs.execute(b"COMMIT")
                            # See `_insert_stored_events`: push a large message out whole
                            # before syncing, or client and server wait for each other.
                            conn.wait(generators.send(conn.pgconn))
                            pipeline.sync()
                            rows = insert.fetchall()
                    except PsycopgError as exc:
                        error = exc  # raised below, once out of the pipeline (as the library)
            except PsycopgError as exc:
                error = error or exc
            if error is not None:
                _roll_back(conn)
                # Inside `get_connection`, which maps psycopg's errors to the library's: a
                # duplicate (originator_id, originator_version) is its IntegrityError.
                raise error
            self.round_trips.add(time.perf_counter() - began)
        return rows

    @retried
    def insert_issued(self, request: IssueRequest, stored_events: Sequence[StoredEvent]) -> int:
        """Record a batch and its request in one transaction; return the batch's last
        notification id. Raises IntegrityError when a racing copy of the request was recorded
        first (after waiting for it to commit) or a key already exists."""
        with self.datastore.transaction(commit=True) as curs:
            self._record_request(curs, request)
            self._lock_table(curs)
            self._notify_channel(curs)
            # Ids come from the bigserial default in COPY order, under the lock.
            with curs.copy(self._copy_events) as copy:
                copy.set_types(self._copy_types)
                for event in stored_events:
                    copy.write_row(
                        (event.originator_id, event.originator_version, event.topic, event.state)
                    )
            curs.execute(self.max_notification_id_statement, prepare=True)
            row = curs.fetchone()
        assert row is not None and row["max"] is not None
        return int(row["max"])

    def append_in(
        self, curs: Cursor[DictRow], insert: Cursor[DictRow], stored_events: Sequence[StoredEvent]
    ) -> Callable[[], Sequence[int]]:
        """Append events inside the caller's transaction, after its own rows, by the library's
        rules: the table lock, then NOTIFY, then the insert (on `insert`, a cursor of its own).
        Works in pipeline mode too: nothing is read here. Returns a function that gives the
        events' notification ids, in order, once the results are in. The caller commits: its
        rows and the events are recorded together or not at all. The table lock serialises
        every writer of the store: take it last and commit soon."""
        make = self.construct_pg_stored_event
        rows = [
            make(e.originator_id, e.originator_version, e.topic, e.state) for e in stored_events
        ]
        for statement in self._append_lock:
            curs.execute(statement, prepare=True)
        curs.execute(self._append_notify)
        insert.execute(self._append_insert, (rows,))

        def ids() -> Sequence[int]:
            found = self._fetch_ids_after_insert_events(insert, stored_events)
            assert found and len(found) == len(stored_events)
            return found

        return ids

    def _record_request(self, curs: Cursor[DictRow], request: IssueRequest) -> None:
        """Insert the request row; a racing copy of the request makes it wait for that copy to
        commit and then raises the library's IntegrityError (ON CONFLICT DO NOTHING keeps the
        transaction usable)."""
        curs.execute(
            self._insert_request,
            (
                request.reseller_id,
                request.request_id,
                request.batch_id,
                request.fingerprint,
                request.count,
                request.last_key_id,
                request.created_at,
            ),
            prepare=True,
        )
        if curs.fetchone() is None:
            raise IntegrityError(f"issue request {request.request_id!r} was recorded first")

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_stored_events(curs, stored_events, **kwargs)
        # psycopg 3.3's pipeline sends a command with one non-blocking flush and then waits for
        # results: a message larger than the socket buffer (a batch of thousands of events, the
        # more so over a Unix socket, as with the embedded database) stays half in libpq's
        # buffer, the server waits for the rest and the client for the results, forever. Push
        # the whole message out before the library syncs the pipeline. (IssueKeys batches no
        # longer come this way: `insert_issued` streams them with COPY, outside any pipeline,
        # and COPY flushes each chunk. Kept for any other large save.)
        curs.connection.wait(generators.send(curs.connection.pgconn))

    def find_issue_request(self, reseller_id: str, request_id: str) -> IssueRequest | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_request, (reseller_id, request_id), prepare=True)
            row = curs.fetchone()
        return IssueRequest(**row) if row else None

    def positioned_events(self, originator_id: UUID) -> list[PositionedEvent]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_positioned, (originator_id,), prepare=True)
            rows = curs.fetchall()
        return [
            PositionedEvent(
                stored=StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                ),
                position=row["notification_id"],
            )
            for row in rows
        ]

    def position_of(self, originator_id: UUID, version: int) -> int | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_position, (originator_id, version), prepare=True)
            row = curs.fetchone()
        return int(row["notification_id"]) if row else None


def _rendered(statement: Any) -> bytes:
    if isinstance(statement, bytes):
        return statement
    if isinstance(statement, str):
        return statement.encode()
    return bytes(statement.as_bytes(None))


def _roll_back(conn: Connection[DictRow]) -> None:
    """After a failed append: in pipeline mode the statements after the error were skipped,
    COMMIT among them, so the transaction is still open (failed). End it, so the connection
    goes back to the pool clean; a broken connection is left for the pool to discard."""
    if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        with contextlib.suppress(PsycopgError):
            conn.rollback()
