"""The client for people (issue 22) through the console script against a real server: a replay
says so and marks each key's current status, refusals carry the server's reason and retry time,
history payloads keep their integers, the new `status`, `watch` and `attempts lift` commands,
one spelling, yes/no, "none" and the --limit hint."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from license_svc.domain import codes
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.e2e.test_client_cli import SCRIPT, cli
from tests.helpers import unique
from tests.support import TOKENS, ServerProcess
from tests.views_support import SMALL_POOLS


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("people") / "server.log"
    process = ServerProcess(database_url, log, LICENSE_SVC_RUN_PROJECTIONS="1", **SMALL_POOLS)
    yield process
    process.stop()


def issue_two(
    server: ServerProcess, request_id: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cli(
        server, "keys", "issue", "--reseller", "acme", "--tier", "growth", "--seats", "3",
        "--count", "2", "--request-id", request_id, *extra, role="acme",
    )  # fmt: skip


def test_a_replayed_issue_says_so_and_marks_each_keys_current_status(
    server: ServerProcess, tmp_path: Path
) -> None:
    request_id = unique("replay")
    first = issue_two(server, request_id, "--json")
    assert first.returncode == 0, first.stderr
    issued = json.loads(first.stdout)
    assert issued["replayed"] is False and "REPLAYED" not in first.stderr
    activated, revoked = issued["keys"]
    assert server.client.activate(activated["code"], unique("acct")).position
    assert cli(server, "keys", "revoke", revoked["key_id"], "--reason", "refund").returncode == 0

    again = issue_two(server, request_id, "--json")
    assert again.returncode == 0, again.stderr
    assert "REPLAYED" in again.stderr and "nothing new was minted" in again.stderr
    replay = json.loads(again.stdout)
    assert replay["replayed"] is True
    assert {k["key_id"]: k["status"] for k in replay["keys"]} == {
        activated["key_id"]: "activated",
        revoked["key_id"]: "revoked",
    }

    table = issue_two(server, request_id)
    lines = table.stdout.splitlines()
    assert lines[0].split()[-1] == "STATUS" and "REPLAYED" in table.stderr
    row_of = {line.split()[0]: line.split()[-1] for line in lines[1:]}
    assert row_of == {activated["code"]: "activated", revoked["code"]: "revoked"}

    out = tmp_path / "codes.csv"
    written = issue_two(server, request_id, "--csv", str(out))
    assert written.returncode == 0 and "replayed 2 keys" in written.stdout
    assert {r["code"]: r["status"] for r in csv.DictReader(out.open())} == row_of

    only_live = issue_two(server, request_id, "--codes")
    assert only_live.stdout == ""  # neither key can be handed out any more


def test_refusals_carry_the_reason_and_when_to_try_again(server: ServerProcess) -> None:
    account, session = unique("acct"), unique("sess")
    for _ in range(5):
        guess = cli(server, "validate", codes.generate("INT").text(), "--account", account,
                    "--session", session, role="portal")  # fmt: skip
        assert guess.returncode == 1
    blocked = cli(server, "validate", codes.generate("INT").text(), "--account", account,
                  "--session", session, "--json", role="portal")  # fmt: skip
    assert blocked.returncode == 1 and blocked.stdout == ""
    error = json.loads(blocked.stderr)
    assert error["code"] == "RESOURCE_EXHAUSTED" and error["reason"] == "TOO_MANY_ATTEMPTS"
    assert error["retry_after_seconds"] > 0 and error["message"]
    assert error["field_violations"] == []

    person = cli(server, "validate", codes.generate("INT").text(), "--account", account,
                 "--session", session, role="portal")  # fmt: skip
    assert person.stderr.count("\n") == 1
    assert "TOO_MANY_ATTEMPTS" in person.stderr and "try again in" in person.stderr

    bad = cli(server, "keys", "revoke", str(uuid.uuid4()), "--reason", "x\x01y", "--json")
    violations = json.loads(bad.stderr)["field_violations"]
    assert bad.returncode == 1 and {v["field"] for v in violations} >= {"reason"}


def test_history_payload_integers_stay_integers_on_the_wire_and_in_the_cli(
    server: ServerProcess,
) -> None:
    key = server.client.issue(1, seats=3).keys[0]
    account = unique("acct")
    server.client.activate(key.code, account)
    assert cli(server, "keys", "revoke", key.key_id, "--reason", "chargeback").returncode == 0
    answer = server.client.audit.GetKeyHistory(
        pb.GetKeyHistoryRequest(key_id=key.key_id),
        metadata=server.client.as_("auditor"),
        timeout=10,
    )
    wire = json.loads(answer.events[0].payload_json)
    assert wire["seats"] == 3 and isinstance(wire["seats"], int)
    assert isinstance(wire["period_months"], int)

    done = cli(server, "audit", "history", key.key_id, "--json", role="auditor")
    payloads = [json.loads(line)["payload"] for line in done.stdout.splitlines()]
    assert payloads[0]["seats"] == 3 and isinstance(payloads[0]["seats"], int)
    assert "3.0" not in done.stdout and "payload_json" not in done.stdout

    table = cli(server, "audit", "history", key.code, role="auditor").stdout
    assert "DETAIL" in table and f"account={account}" in table
    assert "reason=chargeback" in table and "revoked_by=" in table


def test_status_and_the_summary_name_views_and_resellers(server: ServerProcess) -> None:
    status = cli(server, "status")
    assert status.returncode == 0, status.stderr
    assert {"summary", "allowance", "catalog"} <= {
        line.split()[0] for line in status.stdout.splitlines()
    }
    key = server.client.issue(1, reseller="globex").keys[0]
    account = unique("acct")
    position = server.client.activate(key.code, account).position
    summary = cli(server, "summary", account, "--min-position", str(position), role="auditor")
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.splitlines()[1].split()[-1] == "RESELLER"
    assert summary.stdout.splitlines()[2].split()[-1] == "globex"


def test_watch_prints_a_line_per_change_until_ctrl_c(server: ServerProcess) -> None:
    account = unique("acct")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}
    env.update({"LICENSE_SVC_TARGET": server.address, "LICENSE_SVC_TOKEN": TOKENS["integrations"]})
    watcher = subprocess.Popen(
        [str(SCRIPT), "watch", account, "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        before = json.loads(watcher.stdout.readline())
        assert before["account_id"] == account and before.get("active", False) is False
        server.client.activate(server.client.issue(1, seats=4).keys[0].code, account)
        after = json.loads(watcher.stdout.readline())
        assert after["active"] is True and after["seats"] == 4
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 130 and "Traceback" not in err


def test_attempts_lift_over_grpc_records_the_caller(server: ServerProcess) -> None:
    account, session = unique("acct"), unique("sess")
    for _ in range(5):
        cli(server, "validate", codes.generate("INT").text(), "--account", account,
            "--session", session, role="portal")  # fmt: skip
    done = cli(server, "attempts", "lift", "--account", account, "--session", session,
               "--reason", "ticket 9")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "5 failed attempts no longer count" in done.stdout
    denied = cli(server, "attempts", "lift", "--account", account, "--reason", "x", role="portal")
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr


def test_one_spelling_yes_no_none_and_the_limit_hint(server: ServerProcess) -> None:
    assert cli(server, "keys", "issue", "--reseller", "acme", "--tier", "growth", "--seats", "1",
               "--product", "cloud_pos", role="acme").returncode == 2  # fmt: skip
    other = cli(server, "keys", "issue", "--reseller", "acme", "--tier", "TIER_GROWTH",
                "--seats", "1", "--product", "Integrations", role="acme")  # fmt: skip
    assert other.returncode == 0, other.stderr
    allowance = cli(server, "allowance", unique("acct"), "--product", "cloud-pos", role="portal")
    assert allowance.returncode == 0, allowance.stderr
    row = allowance.stdout.splitlines()[1].split()
    assert row[1] == "no" and "False" not in allowance.stdout

    server.client.issue(3)
    cut = cli(server, "keys", "list", "--reseller", "acme", "--limit", "2")
    assert len(cut.stdout.splitlines()) == 4 and "use --limit" in cut.stdout
    empty = cli(server, "keys", "list", "--batch", unique("no-such-batch"))
    assert empty.returncode == 0 and empty.stdout == "none\n"
