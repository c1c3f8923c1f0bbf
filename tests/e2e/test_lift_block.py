"""Support lifts a customer's failed-attempt block (issue 8): `OpsService.LiftAttemptBlock`
over a real channel to a real server, and `license-svc attempts lift` on the database; both
recorded with who lifted it and why."""

from __future__ import annotations

import grpc
import psycopg
import pytest

from license_svc.domain import codes
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich, unique
from tests.support import Client
from tests.views_support import cli


def block(client: Client, account: str, session: str) -> None:
    for _ in range(5):
        with pytest.raises(grpc.RpcError) as failed:
            client.validate(codes.generate("INT").text(), account, session)
        assert rich(failed.value).reason == "KEY_NOT_AVAILABLE"


def reason_of_a_guess(client: Client, account: str, session: str) -> str:
    with pytest.raises(grpc.RpcError) as answered:
        client.validate(codes.generate("INT").text(), account, session)
    return rich(answered.value).reason


def lift(client: Client, role: str = "ops", **fields: str) -> pb.LiftAttemptBlockResponse:
    response: pb.LiftAttemptBlockResponse = client.ops.LiftAttemptBlock(
        pb.LiftAttemptBlockRequest(**fields), metadata=Client.as_(role), timeout=10
    )
    return response


def lifts(sql: psycopg.Connection, account: str) -> list[tuple[str, str, str, int]]:
    rows = sql.execute(
        "SELECT session_id, lifted_by, reason, lifted FROM attempt_block_lifts"
        " WHERE account_id = %s ORDER BY id",
        (account,),
    ).fetchall()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_ops_lifts_a_sessions_block_and_the_lift_is_recorded(
    client: Client, sql: psycopg.Connection
) -> None:
    account, session = unique("acct"), unique("sess")
    block(client, account, session)
    assert reason_of_a_guess(client, account, session) == "TOO_MANY_ATTEMPTS"
    answer = lift(client, account_id=account, session_id=session, reason="ticket 4711")
    assert answer.lifted == 5
    assert reason_of_a_guess(client, account, session) == "KEY_NOT_AVAILABLE"
    assert lifts(sql, account) == [(session, "ops", "ticket 4711", 5)]


def test_only_ops_may_lift_and_a_malformed_request_changes_nothing(
    client: Client, sql: psycopg.Connection
) -> None:
    account, session = unique("acct"), unique("sess")
    block(client, account, session)
    for role in ("portal", "acme", "auditor", "integrations"):
        with pytest.raises(grpc.RpcError) as denied:
            lift(client, role, account_id=account, session_id=session, reason="please")
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    for fields, field in (
        ({"session_id": session, "reason": "no account"}, "account_id"),
        ({"account_id": account}, "reason"),
        ({"account_id": account, "reason": "bad\x00reason"}, "reason"),
        ({"account_id": account, "session_id": "not a session!", "reason": "r"}, "session_id"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            lift(client, **fields)
        error = rich(refused.value)
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT and field in error.violations
    assert lifts(sql, account) == []
    assert reason_of_a_guess(client, account, session) == "TOO_MANY_ATTEMPTS"


def test_the_cli_lifts_an_accounts_block_on_the_database(
    client: Client, database_url: str, sql: psycopg.Connection
) -> None:
    account = unique("acct")
    sessions = [unique("sess") for _ in range(4)]
    for session in sessions:
        block(client, account, session)
    assert reason_of_a_guess(client, account, unique("sess")) == "TOO_MANY_ATTEMPTS"

    done = cli(database_url, "attempts", "lift", "--account", account, "--reason", "verified")
    assert done.returncode == 0, done.stderr
    assert "20 failed attempts no longer count" in done.stdout
    [(session, by, why, lifted)] = lifts(sql, account)
    assert (session, why, lifted) == ("", "verified", 20) and by.startswith("cli:")
    for session in [*sessions, unique("sess")]:
        assert reason_of_a_guess(client, account, session) == "KEY_NOT_AVAILABLE"

    shown = cli(database_url, "attempts", "show", "--account", account)
    assert shown.returncode == 0 and '"lifted_by"' in shown.stdout and "verified" in shown.stdout
    bad = cli(database_url, "attempts", "lift", "--account", "no such id!", "--reason", "x")
    assert bad.returncode == 2 and "account_id" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert cli(database_url, "attempts", "purge").returncode == 0
