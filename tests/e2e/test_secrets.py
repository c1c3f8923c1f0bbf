"""No plaintext code in the database or the server's log (rules §2: secrets stay secret)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import grpc
import pytest

from license_svc.domain import codes
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.e2e.dump import database_text
from tests.helpers import unique
from tests.support import Client, ServerProcess

CODE_SHAPE = re.compile(r"(?i)\b(?:INT|POS)[-_ ]?(?:[A-Z2-9]{4}[-_ ]?){2}[A-Z2-9]{4}\b")


def forms(code: str) -> list[str]:
    """A code as text, without its dashes, and both as the hex a bytea column dumps to."""
    plain = [code, code.replace("-", ""), code[4:].replace("-", "")]
    return plain + [text.encode().hex() for text in plain]


def exercise_every_path_a_code_takes(client: Client, account: str) -> list[str]:
    """Issue, validate, activate, revoke, read and fail with codes; return every code used."""
    keys = client.issue(12).keys
    issued = [k.code for k in keys]
    for key in keys[:4]:
        client.validate(key.code, account, unique("sess"))
        client.activate(key.code.lower(), account, unique("sess"))
        client.activate(key.code, account, unique("sess"))  # idempotent again
    for key in keys[4:6]:
        client.keys.RevokeKey(
            pb.RevokeKeyRequest(code=key.code, reason="refund"),
            metadata=Client.as_("acme"),
            timeout=10,
        )
    for key in keys[:6]:
        client.keys.GetKey(pb.GetKeyRequest(code=key.code), metadata=Client.as_("ops"), timeout=10)
        client.audit.GetKeyHistory(
            pb.GetKeyHistoryRequest(code=key.code), metadata=Client.as_("auditor"), timeout=10
        )
    failing = [codes.generate("INT").text(), codes.generate("POS").text()]
    for code in [*failing, *issued[:6]]:  # used, revoked, unknown and wrong-product codes
        with pytest.raises(grpc.RpcError):
            client.activate(code, unique("acct"), unique("sess"))
    return issued + failing


def test_no_plaintext_code_is_stored_anywhere_in_the_database(
    client: Client, database_url: str
) -> None:
    account = unique("acct")
    used = exercise_every_path_a_code_takes(client, account)
    how, text = database_text(database_url)
    # The search can see event payloads (a bytea column, dumped as hex): the account is there.
    assert account.encode().hex() in text or account in text, f"{how} missed the events"
    leaked = [code for code in used for form in forms(code) if form in text]
    assert leaked == [], f"plaintext codes in the database dump ({how})"


@pytest.fixture(params=["json", "text"])
def logged_server(
    request: pytest.FixtureRequest, server: ServerProcess, database_url: str, tmp_path
) -> Iterator[ServerProcess]:
    """The shared server (`serve` logs JSON by default), and one told to log text."""
    if request.param == "json":
        yield server
        return
    own = ServerProcess(database_url, tmp_path / "text.log", LICENSE_SVC_LOG_FORMAT="text")
    try:
        yield own
    finally:
        own.stop()


def test_no_plaintext_code_reaches_the_server_log(logged_server: ServerProcess) -> None:
    used = exercise_every_path_a_code_takes(logged_server.client, unique("acct"))
    log = logged_server.log_text()
    assert "ActivateKey answered FAILED_PRECONDITION" in log  # the log is the right one
    leaked = [code for code in used for form in forms(code)[:3] if form in log]
    assert leaked == []
    assert CODE_SHAPE.findall(log) == []
    if logged_server.log_path.name != "text.log":  # the JSON form: the values, unescaped too
        values = " ".join(str(v) for line in log.splitlines() for v in json.loads(line).values())
        assert [code for code in used for form in forms(code)[:3] if form in values] == []
        assert CODE_SHAPE.findall(values) == []
