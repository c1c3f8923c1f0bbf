"""The people's client (`license-svc keys …`, `activate`, …, `audit …`) through the console
script against a real server: tables, `--json`, exit codes 0 / 1 / 2, refusals on one line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.helpers import NOT_AVAILABLE, count_events, unique
from tests.support import TOKENS, ServerProcess
from tests.views_support import SMALL_POOLS

SCRIPT = Path(sys.executable).with_name("license-svc")


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that keeps its views itself, so reads see the calls made before them."""
    log = tmp_path_factory.mktemp("client") / "server.log"
    process = ServerProcess(database_url, log, LICENSE_SVC_RUN_PROJECTIONS="1", **SMALL_POOLS)
    yield process
    process.stop()


def cli(server: ServerProcess, *args: str, role: str = "ops") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}
    env.update({"LICENSE_SVC_TARGET": server.address, "LICENSE_SVC_TOKEN": TOKENS.get(role, role)})
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def ok_json(server: ServerProcess, *args: str, role: str = "ops") -> dict[str, object]:
    done = cli(server, *args, "--json", role=role)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_the_whole_flow_through_the_console_script(server: ServerProcess) -> None:
    account = unique("acct")
    issued = ok_json(
        server, "keys", "issue", "--reseller", "acme", "--tier", "growth", "--seats", "3",
        role="acme",
    )  # fmt: skip
    keys = issued["keys"]
    assert isinstance(keys, list) and len(keys) == 1
    code, key_id = keys[0]["code"], keys[0]["key_id"]

    validated = ok_json(server, "validate", code, "--account", account, role="portal")
    assert validated["key_id"] == key_id and validated["seats"] == 3
    activated = ok_json(server, "activate", code, "--account", account, role="portal")
    position = int(activated["position"])  # type: ignore[call-overload]
    assert activated["entitlement"]["account_id"] == account  # type: ignore[index]

    allowance = ok_json(
        server, "allowance", account, "--in-use", "1", "--min-position", str(position),
        role="integrations",
    )  # fmt: skip
    assert allowance["seats"] == 3 and allowance["remaining"] == 2
    table = cli(server, "allowance", account, "--min-position", str(position), role="portal")
    assert table.returncode == 0 and account in table.stdout and "REMAINING" in table.stdout

    stats = cli(server, "stats", "--reseller", "acme", "--json")
    if "UNIMPLEMENTED" not in stats.stderr:  # GetKeyStats lands in parallel
        assert stats.returncode == 0, stats.stderr
        assert "counts" in json.loads(stats.stdout)

    expiring = cli(server, "expiring", "--before", "2100-01-01T00:00:00Z", "--limit", "3", "--json")
    assert expiring.returncode == 0, expiring.stderr
    rows = [json.loads(line) for line in expiring.stdout.splitlines()]  # one object a line
    assert 1 <= len(rows) <= 3 and all("period_ends_at" in row for row in rows)

    revoked = ok_json(server, "keys", "revoke", key_id, "--reason", "refund")
    assert revoked["key"]["status"] == "KEY_STATUS_REVOKED"  # type: ignore[index]
    shown = cli(server, "keys", "show", key_id)
    assert shown.returncode == 0 and "revoked" in shown.stdout


def test_a_refusal_is_one_line_with_the_servers_message_and_exit_1(server: ServerProcess) -> None:
    key = ok_json(
        server,
        "keys",
        "issue",
        "--reseller",
        "acme",
        "--tier",
        "starter",
        "--seats",
        "1",
        role="acme",
    )["keys"][0]  # type: ignore[index]
    assert (
        cli(server, "activate", key["code"], "--account", unique("a"), role="portal").returncode
        == 0
    )
    again = cli(server, "activate", key["code"], "--account", unique("b"), role="portal")
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr.count("\n") == 1 and NOT_AVAILABLE in again.stderr


def test_a_bad_token_is_one_clear_line_and_usage_errors_exit_2(server: ServerProcess) -> None:
    bad = cli(server, "keys", "list", role="not-a-token")
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "token" in bad.stderr
    assert cli(server, "keys", "issue", "--tier", "platinum").returncode == 2
    assert cli(server, "summary", "acct", "--as-of", "yesterday").returncode == 2
    assert cli(server, "keys", "list", role="").returncode == 2  # no token at all


def test_issuing_many_keys_shows_progress_and_writes_the_codes_to_csv(
    server: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "codes.csv"
    done = cli(
        server, "keys", "issue", "--reseller", "globex", "--tier", "scale", "--seats", "2",
        "--count", "1200", "--chunk", "500", "--csv", str(out), role="globex",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1200/1200" in done.stderr and "500/1200" in done.stderr  # the progress indicator
    assert str(out) in done.stdout and "INT-" not in done.stdout  # codes go to the file only
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1200 and len({r["code"] for r in rows}) == 1200
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_audit_events_prints_json_lines_and_stops_cleanly_under_head(
    server: ServerProcess,
) -> None:
    server.client.issue(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}
    env.update({"LICENSE_SVC_TARGET": server.address, "LICENSE_SVC_TOKEN": TOKENS["auditor"]})
    probe = cli(server, "audit", "events", "--after", "0", "--limit", "1", role="auditor")
    if "UNIMPLEMENTED" in probe.stderr:
        pytest.skip("StreamEvents is not on this branch yet")
    done = subprocess.run(
        f"'{SCRIPT}' audit events --after 0 | head -3",
        shell=True, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    assert [json.loads(line)["type"] for line in lines]
    assert "Traceback" not in done.stderr


def test_audit_history_and_a_filtered_event_stream(server: ServerProcess) -> None:
    key = server.client.issue(1).keys[0]
    history = cli(server, "audit", "history", key.code, "--json", role="auditor")
    assert history.returncode == 0, history.stderr
    assert [json.loads(line)["type"] for line in history.stdout.splitlines()] == ["KeyIssued"]
    assert "KeyIssued" in cli(server, "audit", "history", key.key_id, role="auditor").stdout
    revoked = ok_json(server, "keys", "revoke", key.key_id, "--reason", "test")
    position = int(revoked["position"])  # type: ignore[call-overload]
    events = cli(
        server, "audit", "events", "--after", str(position - 1), "--type", "KeyRevoked",
        "--markers", role="auditor",
    )  # fmt: skip
    if "UNIMPLEMENTED" in events.stderr:
        pytest.skip("StreamEvents is not on this branch yet")
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    assert lines[0]["type"] == "KeyRevoked" and lines[0]["key_id"] == key.key_id
    assert {"caught_up"} <= {k for line in lines[1:] for k in line}
    denied = cli(server, "audit", "events", role="portal")
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr


def test_audit_summary_as_of_answers_the_point_in_time(server: ServerProcess) -> None:
    account = unique("acct")
    key = server.client.issue(1).keys[0]
    before = "2000-01-01T00:00:00Z"
    position = server.client.activate(key.code, account).position
    done = cli(
        server, "audit", "summary", account, "--as-of", before, "--min-position", str(position),
        "--json", role="auditor",
    )  # fmt: skip
    if "UNIMPLEMENTED" in done.stderr:
        pytest.skip("as_of is not on this branch yet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout).get("active", False) is False  # nothing was active in 2000
    now = cli(server, "summary", account, "--min-position", str(position), "--json", role="auditor")
    assert json.loads(now.stdout)["active"] is True


def test_following_events_ends_cleanly_on_ctrl_c(server: ServerProcess) -> None:
    import signal

    server.client.issue(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}
    env.update({"LICENSE_SVC_TARGET": server.address, "LICENSE_SVC_TOKEN": TOKENS["auditor"]})
    follower = subprocess.Popen(
        [str(SCRIPT), "audit", "events", "--after", "0", "--follow"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()  # streaming: a line arrives before the stream ends
        assert json.loads(first)["position"] >= 1
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 130 and "Traceback" not in err


@pytest.mark.parametrize("kind", ["existing file", "symlink", "dangling symlink"])
def test_codes_are_never_written_through_an_existing_file_or_a_symlink(
    server: ServerProcess, tmp_path: Path, sql: psycopg.Connection, kind: str
) -> None:
    out, target = tmp_path / "codes.csv", tmp_path / "elsewhere.txt"
    if kind == "existing file":
        out.write_text("kept\n")
        out.chmod(0o644)  # a file others may read: its mode would have been kept
    else:
        if kind == "symlink":
            target.write_text("kept\n")
        out.symlink_to(target)
    before = count_events(sql)
    done = cli(
        server, "keys", "issue", "--reseller", "globex", "--tier", "scale", "--seats", "2",
        "--count", "3", "--csv", str(out), role="globex",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert str(out) in done.stderr and "INT-" not in done.stdout + done.stderr
    assert count_events(sql) == before  # refused before anything was issued
    if kind == "existing file":
        assert out.read_text() == "kept\n" and oct(out.stat().st_mode & 0o777) == "0o644"
    elif kind == "symlink":
        assert target.read_text() == "kept\n"
    else:
        assert not target.exists()


def test_seat_leases_through_the_console_script(server: ServerProcess) -> None:
    account = unique("acct")
    issued = ok_json(
        server, "keys", "issue", "--reseller", "acme", "--tier", "growth", "--seats", "1",
        role="acme",
    )  # fmt: skip
    keys = issued["keys"]
    assert isinstance(keys, list)
    activated = ok_json(server, "activate", keys[0]["code"], "--account", account, role="portal")
    ok_json(server, "allowance", account, "--min-position", str(activated["position"]))
    lease = ok_json(
        server, "seats", "acquire", account, "--connection", "c-1", "--holder", "h-1",
        role="integrations",
    )  # fmt: skip
    assert lease["seats_leased"] == 1 and lease["seats"] == 1
    lease_id = lease["lease"]["lease_id"]  # type: ignore[index]
    listed = cli(server, "seats", "list", account, role="portal")
    assert listed.returncode == 0 and lease_id in listed.stdout
    full = cli(server, "seats", "acquire", account, "--connection", "c-2", role="integrations")
    assert full.returncode == 1 and "All 1 seats are in use" in full.stderr
    renewed = cli(server, "seats", "renew", lease_id, "--holder", "h-1", role="integrations")
    assert renewed.returncode == 0 and "renewed" in renewed.stdout
    released = cli(server, "seats", "release", lease_id, role="integrations")
    assert (released.returncode, released.stdout.strip()) == (0, "released")
