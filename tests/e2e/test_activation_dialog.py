"""ValidateKey and ActivateKey through a real server process: the rules and texts of rules §4."""

from __future__ import annotations

import grpc
import psycopg
import pytest

from license_svc.domain import codes
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import (
    EVENTS_TABLE,
    NOT_AVAILABLE,
    WRONG_PRODUCT_TEXT,
    RichError,
    count_events,
    rich,
    stored_topics,
    unique,
)
from tests.support import Client

DOMAIN = "licensing.fiscobridge.com"


def refused(call: object, *args: str) -> RichError:
    with pytest.raises(grpc.RpcError) as failure:
        call(*args)  # type: ignore[operator]
    return rich(failure.value)


def assert_not_available(error: RichError) -> None:
    assert (error.code, error.message, error.reason, error.domain) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        NOT_AVAILABLE,
        "KEY_NOT_AVAILABLE",
        DOMAIN,
    )


def attempts_of(sql: psycopg.Connection, account: str) -> int:
    row = sql.execute("SELECT count(*) FROM failed_attempts WHERE account_id = %s", (account,))
    found = row.fetchone()
    assert found is not None
    return int(found[0])


def test_validate_key_tells_product_tier_seats_period_and_limits_and_appends_nothing(
    client: Client, sql: psycopg.Connection
) -> None:
    issued = client.issue(1, tier=pb.TIER_SCALE, seats=7, period_months=24).keys[0]
    before = count_events(sql)
    answer = client.validate(f"  {issued.code.lower()}\t", unique("acct"), unique("sess"))
    assert (answer.product, answer.tier, answer.seats, answer.period_months) == (
        pb.PRODUCT_INTEGRATIONS,
        pb.TIER_SCALE,
        7,
        24,
    )
    assert (answer.limits.name, answer.limits.invoices_per_month, answer.limits.sync) == (
        "Scale",
        10_000,
        "Real-time + multi-location",
    )
    assert (answer.invoices_per_month, answer.sync) == (10_000, "Real-time + multi-location")
    assert (answer.key_id, answer.hint) == (issued.key_id, issued.hint)
    assert count_events(sql) == before
    assert stored_topics(sql, issued.key_id) == ["KeyIssued"]


def test_activate_key_returns_the_entitlement_and_the_position_of_its_event(
    client: Client, sql: psycopg.Connection
) -> None:
    issued = client.issue(1, tier=pb.TIER_STARTER, seats=2, period_months=3).keys[0]
    account = unique("acct")
    answer = client.activate(issued.code, account, unique("sess"))
    entitlement = answer.entitlement
    assert (entitlement.key_id, entitlement.account_id, entitlement.hint) == (
        issued.key_id,
        account,
        issued.hint,
    )
    assert (entitlement.tier, entitlement.seats, entitlement.product) == (
        pb.TIER_STARTER,
        2,
        pb.PRODUCT_INTEGRATIONS,
    )
    assert entitlement.period_ends_at.ToDatetime() > entitlement.period_starts_at.ToDatetime()
    assert (answer.limits.invoices_per_month, answer.already_active) == (300, False)
    row = sql.execute(
        f"SELECT notification_id FROM {EVENTS_TABLE}"
        " WHERE originator_id = %s AND originator_version = 2",
        (issued.key_id,),
    ).fetchone()
    assert row == (answer.position,)


def test_the_same_account_again_gets_the_same_entitlement_and_position_and_appends_nothing(
    client: Client, sql: psycopg.Connection
) -> None:
    issued = client.issue(1).keys[0]
    account = unique("acct")
    first = client.activate(issued.code, account, unique("sess"))
    before = count_events(sql)
    again = client.activate(issued.code, account, unique("sess"))
    assert count_events(sql) == before
    assert again.entitlement == first.entitlement
    assert (again.position, again.already_active) == (first.position, True)
    assert client.validate(issued.code, account, unique("sess")).key_id == issued.key_id
    assert attempts_of(sql, account) == 0


def test_second_account_cannot_activate_a_redeemed_key(
    client: Client, sql: psycopg.Connection
) -> None:
    issued = client.issue(1).keys[0]
    client.activate(issued.code, unique("acct"), unique("sess"))
    before = count_events(sql)
    other = unique("acct")
    assert_not_available(refused(client.activate, issued.code, other, unique("sess")))
    assert_not_available(refused(client.validate, issued.code, other, unique("sess")))
    assert count_events(sql) == before
    assert stored_topics(sql, issued.key_id) == ["KeyIssued", "KeyActivated"]


def test_a_revoked_key_is_not_available(client: Client) -> None:
    issued = client.issue(1).keys[0]
    client.keys.RevokeKey(
        pb.RevokeKeyRequest(key_id=issued.key_id, reason="refund"),
        metadata=Client.as_("acme"),
        timeout=10,
    )
    for call in (client.validate, client.activate):
        assert_not_available(refused(call, issued.code, unique("acct"), unique("sess")))


def test_a_well_formed_key_that_was_never_issued_is_not_available(client: Client) -> None:
    never = codes.generate("INT").text()
    for call in (client.validate, client.activate):
        assert_not_available(refused(call, never, unique("acct"), unique("sess")))


def test_a_cloud_pos_key_gets_the_wrong_product_sentence_never_not_available(
    client: Client,
) -> None:
    pos = codes.generate("POS").text()
    for call in (client.validate, client.activate):
        error = refused(call, pos.lower(), unique("acct"), unique("sess"))
        assert (error.code, error.reason, error.domain) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "WRONG_PRODUCT",
            DOMAIN,
        )
        assert error.message == WRONG_PRODUCT_TEXT
        assert "Cloud POS" in error.message and "Integrations" in error.message


@pytest.mark.parametrize(
    "text",
    ["INT-NOPE", "int-2345-6789-abcd-efgh", "INT-ABCD-EFGH-JKL0", "POS_ABCD_EFGH_JKLM", ""],
)
def test_a_malformed_key_gets_exactly_invalid_key_format(client: Client, text: str) -> None:
    for call in (client.validate, client.activate):
        error = refused(call, text, unique("acct"), unique("sess"))
        assert (error.code, error.message, error.reason, error.domain) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "Invalid key format",
            "INVALID_KEY_FORMAT",
            DOMAIN,
        )


def test_a_key_with_one_mistyped_symbol_gets_invalid_key_format(client: Client) -> None:
    code = client.issue(1).keys[0].code
    last = code[-1]
    typo = code[:-1] + ("A" if last != "A" else "B")
    error = refused(client.activate, typo, unique("acct"), unique("sess"))
    assert (error.message, error.reason) == ("Invalid key format", "INVALID_KEY_FORMAT")


def test_too_many_attempts_is_resource_exhausted_with_retry_info(
    client: Client, sql: psycopg.Connection
) -> None:
    good = client.issue(1).keys[0].code
    account, session = unique("acct"), unique("sess")
    for _ in range(5):
        refused(client.activate, codes.generate("INT").text(), account, session)
    for call in (client.validate, client.activate):
        error = refused(call, good, account, session)
        assert (error.code, error.message, error.reason, error.domain) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Too many failed attempts",
            "TOO_MANY_ATTEMPTS",
            DOMAIN,
        )
        assert error.retry_delay is not None
        assert 0 < error.retry_delay.total_seconds() <= 15 * 60
    assert attempts_of(sql, account) == 5


@pytest.mark.parametrize(
    ("account", "session", "product", "fields"),
    [
        ("", "sess", pb.PRODUCT_INTEGRATIONS, {"account_id"}),
        ("acct", " ", pb.PRODUCT_INTEGRATIONS, {"session_id"}),
        ("acct", "sess", pb.PRODUCT_UNSPECIFIED, {"product"}),
        ("acct", "sess", pb.PRODUCT_CLOUD_POS, {"product"}),
        ("", "", pb.PRODUCT_UNSPECIFIED, {"account_id", "session_id", "product"}),
    ],
    ids=["no-account", "blank-session", "no-product", "pos-dialog", "nothing"],
)
def test_a_malformed_request_lists_its_field_violations_and_is_not_an_attempt(
    client: Client,
    sql: psycopg.Connection,
    account: str,
    session: str,
    product: pb.Product,
    fields: set[str],
) -> None:
    good = client.issue(1).keys[0].code
    suffix = unique("")
    account_id = account + suffix if account else ""
    session_id = session + suffix if session.strip() else session
    calls = (
        (client.activation.ValidateKey, pb.ValidateKeyRequest),
        (client.activation.ActivateKey, pb.ActivateKeyRequest),
    )
    for _ in range(6):
        for method, message in calls:
            request = message(
                code="INT-NOPE", account_id=account_id, session_id=session_id, product=product
            )
            with pytest.raises(grpc.RpcError) as failure:
                method(request, metadata=Client.as_("portal"), timeout=10)
            error = rich(failure.value)
            assert (error.code, error.reason) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_REQUEST",
            )
            assert set(error.violations) == fields
    if account_id:
        assert attempts_of(sql, account_id) == 0
    # Twelve malformed calls later the dialog still lets a good key through.
    answer = client.activate(good, account_id or unique("acct"), session_id.strip() or "s")
    assert not answer.already_active
