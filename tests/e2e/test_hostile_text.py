"""Text no request may carry (NUL and other control characters, ids outside their alphabet) is
refused at the door with a field violation and changes nothing, through a real server process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import RichError, count_events, rich, unique
from tests.support import Client, ServerProcess
from tests.views_support import SMALL_POOLS, fresh_database

INT = pb.PRODUCT_INTEGRATIONS


def refused(call: Callable[[], Any]) -> RichError:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return rich(failure.value)


def attempts_of(sql: psycopg.Connection, account: str) -> int:
    row = sql.execute("SELECT count(*) FROM failed_attempts WHERE account_id = %s", (account,))
    found = row.fetchone()
    assert found is not None
    return int(found[0])


@pytest.fixture
def projecting_server(database_url: str, tmp_path: Path) -> Iterator[tuple[Client, str]]:
    """A server that keeps its views in-process, on a database of its own (whole-view checks)."""
    with fresh_database(database_url) as url:
        server = ServerProcess(
            url, tmp_path / "server.log", LICENSE_SVC_RUN_PROJECTIONS="1", **SMALL_POOLS
        )
        try:
            yield server.client, url
        finally:
            server.stop()


def positions(client: Client) -> dict[str, int]:
    status = client.ops.GetProjectionStatus(
        pb.GetProjectionStatusRequest(), metadata=Client.as_("ops"), timeout=10
    )
    return {p.name: p.position for p in status.projections}


def summary_at(client: Client, account: str, position: int) -> pb.SubscriptionSummary:
    answer: pb.SubscriptionSummary = client.entitlements.GetSubscriptionSummary(
        pb.GetSubscriptionSummaryRequest(account_id=account, product=INT, min_position=position),
        metadata=Client.as_("portal"),
        timeout=10,
    )
    return answer


def test_a_revoke_with_a_nul_in_its_reason_is_refused_and_the_views_keep_going(
    projecting_server: tuple[Client, str],
) -> None:
    client, url = projecting_server
    issued = client.issue(2, reseller="acme")
    victim, good = issued.keys
    summary_at(client, unique("acct"), issued.position)  # the views have caught up
    before = positions(client)
    with psycopg.connect(url, autocommit=True) as sql:
        events = count_events(sql)
        error = refused(
            lambda: client.keys.RevokeKey(
                pb.RevokeKeyRequest(key_id=victim.key_id, reason="fraud\x00oops"),
                metadata=Client.as_("acme"),
                timeout=10,
            )
        )
        assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
        assert set(error.violations) == {"reason"}
        assert count_events(sql) == events
    assert positions(client) == before
    account = unique("acct")
    activated = client.activate(good.code, account, unique("sess"))
    read = summary_at(client, account, activated.position)
    assert read.active and read.position >= activated.position
    assert [e.key_id for e in read.entitlements] == [good.key_id]


NUL_FIELDS: list[tuple[str, str, Callable[[Client, str], Any]]] = [
    (
        "ValidateKey",
        "account_id",
        lambda c, v: c.activation.ValidateKey(
            pb.ValidateKeyRequest(code="INT-NOPE", account_id=v, session_id="s", product=INT),
            metadata=Client.as_("portal"),
            timeout=10,
        ),
    ),
    (
        "ActivateKey",
        "session_id",
        lambda c, v: c.activation.ActivateKey(
            pb.ActivateKeyRequest(code="INT-NOPE", account_id="a", session_id=v, product=INT),
            metadata=Client.as_("portal"),
            timeout=10,
        ),
    ),
    (
        "GetSubscriptionSummary",
        "account_id",
        lambda c, v: c.entitlements.GetSubscriptionSummary(
            pb.GetSubscriptionSummaryRequest(account_id=v, product=INT),
            metadata=Client.as_("portal"),
            timeout=10,
        ),
    ),
    (
        "GetSeatAllowance",
        "account_id",
        lambda c, v: c.entitlements.GetSeatAllowance(
            pb.GetSeatAllowanceRequest(account_id=v, product=INT),
            metadata=Client.as_("integrations"),
            timeout=10,
        ),
    ),
    (
        "GetAllowanceToken",
        "account_id",
        lambda c, v: c.entitlements.GetAllowanceToken(
            pb.GetAllowanceTokenRequest(account_id=v, product=INT),
            metadata=Client.as_("integrations"),
            timeout=10,
        ),
    ),
    (
        "IssueKeys",
        "reseller_id",
        lambda c, v: c.keys.IssueKeys(
            pb.IssueKeysRequest(
                reseller_id=v, product=INT, tier=pb.TIER_STARTER, seats=1, period_months=1, count=1
            ),
            metadata=Client.as_("ops"),
            timeout=10,
        ),
    ),
    (
        "IssueKeys",
        "request_id",
        lambda c, v: c.keys.IssueKeys(
            pb.IssueKeysRequest(
                reseller_id="acme",
                product=INT,
                tier=pb.TIER_STARTER,
                seats=1,
                period_months=1,
                count=1,
                request_id=v,
            ),
            metadata=Client.as_("acme"),
            timeout=10,
        ),
    ),
    (
        "ListKeys",
        "reseller_id",
        lambda c, v: c.keys.ListKeys(
            pb.ListKeysRequest(reseller_id=v), metadata=Client.as_("ops"), timeout=10
        ),
    ),
    (
        "ListKeys",
        "batch_id",
        lambda c, v: c.keys.ListKeys(
            pb.ListKeysRequest(batch_id=v), metadata=Client.as_("acme"), timeout=10
        ),
    ),
]


@pytest.mark.parametrize(
    ("method", "field", "call"), NUL_FIELDS, ids=[f"{m}-{f}" for m, f, _ in NUL_FIELDS]
)
@pytest.mark.parametrize(
    "value", ["a\x00b", "\x00", "tab\there", "bell\x07", "c1\x85", "del\x7f", "sp ace", "é"]
)
def test_an_id_with_a_control_character_or_outside_its_alphabet_is_a_field_violation(
    client: Client,
    sql: psycopg.Connection,
    method: str,
    field: str,
    call: Callable[[Client, str], Any],
    value: str,
) -> None:
    events = count_events(sql)
    error = refused(lambda: call(client, value))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert set(error.violations) == {field}, method
    assert count_events(sql) == events


def test_an_id_longer_than_its_limit_is_a_field_violation(client: Client) -> None:
    error = refused(lambda: client.validate("INT-NOPE", "a" * 129, "s"))
    assert error.violations == {"account_id": "must be at most 128 characters"}


def test_a_malformed_dialog_id_is_not_a_failed_attempt(
    client: Client, sql: psycopg.Connection
) -> None:
    account = unique("acct")
    for _ in range(6):
        error = refused(lambda: client.validate("INT-NOPE", account, "sess\x00ion"))
        assert set(error.violations) == {"session_id"}
    assert attempts_of(sql, account) == 0
    assert client.validate(client.issue(1).keys[0].code, account, unique("sess")).seats == 3


@pytest.mark.parametrize(
    "code", ["A" * 20_000, "INT-" + "\x00" * 20_000, "\x00", "INT-ABCD-EFGH-JKL\x00", "\u202e" * 50]
)
def test_any_code_that_is_not_a_key_is_invalid_key_format_and_a_failed_attempt(
    client: Client, sql: psycopg.Connection, code: str
) -> None:
    account = unique("acct")
    error = refused(lambda: client.validate(code, account, unique("sess")))
    assert (error.code, error.message, error.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Invalid key format",
        "INVALID_KEY_FORMAT",
    )
    assert error.violations == {}
    assert attempts_of(sql, account) == 1


def test_a_reason_with_a_control_character_is_refused_for_ops_too(
    client: Client, sql: psycopg.Connection
) -> None:
    key = client.issue(1).keys[0]
    events = count_events(sql)
    for reason in ("line\nbreak", "nul\x00", "esc\x1b[31m", "c1\x9b"):
        request = pb.RevokeKeyRequest(key_id=key.key_id, reason=reason)
        with pytest.raises(grpc.RpcError) as failure:
            client.keys.RevokeKey(request, metadata=Client.as_("ops"), timeout=10)
        assert set(rich(failure.value).violations) == {"reason"}
    assert count_events(sql) == events
    revoked = client.keys.RevokeKey(
        pb.RevokeKeyRequest(key_id=key.key_id, reason="  Fraud: chargeback #42 — €10 ☃  "),
        metadata=Client.as_("ops"),
        timeout=10,
    )
    assert revoked.key.revoked_reason == "Fraud: chargeback #42 — €10 ☃"
