"""A call's deadline bounds its database work, through a real channel to an in-process server:
an IssueKeys whose client gives up while the events table is locked stops waiting with the
caller (its statement timeout is the time the caller has left) and never commits afterwards,
even once the lock is released."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import psycopg
import pytest

from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import EVENTS_TABLE, unique
from tests.support import Client
from tests.support import issue_request as support_issue_request
from tests.views_support import wait_until


def writers_waiting(sql: psycopg.Connection) -> int:
    """Appends waiting for the events table's lock (readers, such as the log follower, wait for
    another mode)."""
    row = sql.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass"
        " AND mode = 'ExclusiveLock'",
        (EVENTS_TABLE,),
    ).fetchone()
    return int(row[0]) if row else 0


def issue_request(request_id: str) -> pb.IssueKeysRequest:
    return support_issue_request(3, seats=1, request_id=request_id)


def test_an_issue_whose_caller_gave_up_stops_with_its_deadline_and_never_commits_later(
    make_service: Callable[..., Service],
    serve_in_process: Callable[[Service], Client],
    database_url: str,
    sql: psycopg.Connection,
) -> None:
    # The database's own bounds far beyond the test's patience: only the deadline can end it.
    client = serve_in_process(make_service(lock_timeout=120.0, statement_timeout=120.0))
    request_id = unique("req")
    with psycopg.connect(database_url) as holder:  # holds the events table's lock
        holder.execute(f"LOCK TABLE {EVENTS_TABLE} IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(grpc.RpcError) as failure:
            client.keys.IssueKeys(
                issue_request(request_id), metadata=client.as_("acme"), timeout=1.5
            )
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The server stops waiting with its caller; the lock is still held meanwhile.
        wait_until(lambda: writers_waiting(sql) == 0, "the server gave up", 30)
        holder.rollback()
    again = client.keys.IssueKeys(
        issue_request(request_id), metadata=client.as_("acme"), timeout=30
    )
    assert again.replayed is False  # the first one never committed
