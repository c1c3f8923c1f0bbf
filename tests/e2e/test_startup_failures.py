"""Every start-up failure is one line on stderr naming the setting, exit 2 (a setting is wrong)
or 1 (a dependency stayed down), never a traceback; production refuses development secrets.

Each case runs the real command in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from license_svc import config
from license_svc.bootstrap import Service
from tests.support import REPO, TEST_PEPPER, ServerProcess, free_port, signing_key_file

TOKENS = str(REPO / "deploy" / "dev" / "tokens.json")


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, list[str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}
    done = subprocess.run(
        [sys.executable, "-m", "license_svc.entrypoints.cli.main", *args],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return done.returncode, lines


def production_env(database_url: str, **changes: str) -> dict[str, str]:
    env = {
        "LICENSE_SVC_DATABASE_URL": database_url,
        "LICENSE_SVC_PEPPER": TEST_PEPPER,
        "LICENSE_SVC_TOKENS_FILE": TOKENS,
        "LICENSE_SVC_SIGNING_KEY_FILE": str(signing_key_file()),
        "LICENSE_SVC_LISTEN": f"127.0.0.1:{free_port()}",
        "LICENSE_SVC_STARTUP_WAIT_SECONDS": "0",
        "LICENSE_SVC_METRICS_LISTEN": "127.0.0.1:0",
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v != "<unset>"}


def assert_one_line_failure(code: int, lines: list[str], expected_code: int, setting: str):
    assert code == expected_code, lines
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    assert setting in lines[0], lines[0]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("missing", ["LICENSE_SVC_PEPPER", "LICENSE_SVC_TOKENS_FILE"])
def test_serve_refuses_to_start_without_explicit_secrets(database_url: str, missing: str) -> None:
    """`project`, `expire` and `dashboard` hold no pepper: test_pepperless_commands.py."""
    code, lines = run_cli(["serve"], production_env(database_url, **{missing: "<unset>"}))
    assert_one_line_failure(code, lines, 2, missing)


CASES: dict[str, tuple[Callable[[Path, str], dict[str, str]], int, str]] = {
    "malformed url": (lambda _, url: {"LICENSE_SVC_DATABASE_URL": "not a url"}, 2, "DATABASE_URL"),
    "no url": (lambda _, url: {"LICENSE_SVC_DATABASE_URL": "<unset>"}, 2, "DATABASE_URL"),
    "unreachable database": (
        lambda _, url: {
            "LICENSE_SVC_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x"
        },
        1,
        "DATABASE_URL",
    ),
    "missing database": (
        lambda _, url: {
            "LICENSE_SVC_DATABASE_URL": make_conninfo(url, dbname="license_svc_no_such_db")
        },
        2,
        "DATABASE_URL",
    ),
    "missing pepper file": (
        lambda tmp, _: {
            "LICENSE_SVC_PEPPER": "<unset>",
            "LICENSE_SVC_PEPPER_FILE": str(tmp / "absent"),
        },
        2,
        "LICENSE_SVC_PEPPER_FILE",
    ),
    "short pepper": (lambda _, url: {"LICENSE_SVC_PEPPER": "short"}, 2, "LICENSE_SVC_PEPPER"),
    "tokens not json": (
        lambda tmp, _: {"LICENSE_SVC_TOKENS_FILE": write(tmp, "t.json", "[{oops")},
        2,
        "TOKENS_FILE",
    ),
    "tokens an object": (
        lambda tmp, _: {
            "LICENSE_SVC_TOKENS_FILE": write(tmp, "t.json", json.dumps({"token": "x"}))
        },
        2,
        "TOKENS_FILE",
    ),
    "tokens entry without role": (
        lambda tmp, _: {
            "LICENSE_SVC_TOKENS_FILE": write(tmp, "t.json", json.dumps([{"token": "x"}]))
        },
        2,
        "TOKENS_FILE",
    ),
    "port out of range": (
        lambda _, url: {"LICENSE_SVC_LISTEN": "127.0.0.1:99999"},
        2,
        "LICENSE_SVC_LISTEN",
    ),
    "listen without port": (lambda _, url: {"LICENSE_SVC_LISTEN": "localhost"}, 2, "LISTEN"),
    "missing tls files": (
        lambda tmp, _: {
            "LICENSE_SVC_TLS_CERT": str(tmp / "cert.pem"),
            "LICENSE_SVC_TLS_KEY": str(tmp / "key.pem"),
        },
        2,
        "LICENSE_SVC_TLS_CERT",
    ),
    "cert without key": (
        lambda tmp, _: {"LICENSE_SVC_TLS_CERT": write(tmp, "cert.pem", PEM)},
        2,
        "LICENSE_SVC_TLS_KEY",
    ),
    "client ca without cert and key": (
        lambda tmp, _: {"LICENSE_SVC_TLS_CLIENT_CA": write(tmp, "ca.pem", PEM)},
        2,
        "LICENSE_SVC_TLS_CLIENT_CA",
    ),
    "negative grace": (lambda _, url: {"LICENSE_SVC_GRACE_SECONDS": "-1"}, 2, "GRACE_SECONDS"),
    "misspelt boolean": (
        lambda _, url: {"LICENSE_SVC_RUN_PROJECTIONS": "ture"},
        2,
        "LICENSE_SVC_RUN_PROJECTIONS",
    ),
    "not a number": (lambda _, url: {"LICENSE_SVC_POOL_SIZE": "eight"}, 2, "POOL_SIZE"),
    "the test clock offset": (
        lambda _, url: {"LICENSE_SVC_CLOCK_OFFSET_SECONDS": "86400"},
        2,
        "LICENSE_SVC_CLOCK_OFFSET_SECONDS",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_misconfiguration_is_one_line_naming_the_setting(
    case: str, database_url: str, tmp_path: Path
) -> None:
    changes, expected_code, setting = CASES[case]
    env = production_env(database_url, **changes(tmp_path, database_url))
    code, lines = run_cli(["serve"], env)
    assert_one_line_failure(code, lines, expected_code, setting)


def test_a_port_in_use_is_one_line_naming_the_address(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        code, lines = run_cli(["serve"], production_env(database_url, LICENSE_SVC_LISTEN=address))
    assert_one_line_failure(code, lines, 2, "LICENSE_SVC_LISTEN")
    assert address in lines[0]


def test_the_start_up_wait_logs_each_attempt_then_gives_up(database_url: str) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    env = production_env(
        database_url, LICENSE_SVC_DATABASE_URL=down, LICENSE_SVC_STARTUP_WAIT_SECONDS="1.5"
    )
    code, lines = run_cli(["serve"], env)
    assert code == 1
    attempts = [line for line in lines if "not reachable (attempt" in line]
    assert len(attempts) >= 1
    assert "LICENSE_SVC_STARTUP_WAIT_SECONDS" in lines[-1]
    assert not any("Traceback" in line for line in lines)


def test_a_pepper_other_than_the_stores_is_refused(
    database_url: str, make_service: Callable[..., Service]
) -> None:
    make_service()  # the store records the fingerprint of the test pepper (if not yet)
    other = production_env(database_url, LICENSE_SVC_PEPPER="another-pepper-0123456789abcdef")
    for command in (["serve"], ["project"], ["expire", "--once"]):
        code, lines = run_cli(command, other)
        assert_one_line_failure(code, lines, 2, "LICENSE_SVC_PEPPER")


def test_the_server_logs_once_what_it_runs_with(server: ServerProcess, database_url: str):
    params = conninfo_to_dict(database_url)
    lines = [line for line in server.log_text().splitlines() if "listening on" in line]
    assert len(lines) == 1
    line = lines[0]
    assert f"listening on {server.address} (plaintext)" in line
    assert f"/{params.get('dbname')}" in line
    assert "7 tokens" in line
    if params.get("password"):
        assert str(params["password"]) not in line


def test_the_development_tokens_ship_with_the_package() -> None:
    shipped = json.loads(config.DEV_TOKENS.read_text())
    assert shipped == json.loads(Path(TOKENS).read_text())


@pytest.mark.parametrize(
    "setting", ["LICENSE_SVC_LISTEN", "LICENSE_SVC_DASHBOARD_LISTEN"], ids=["grpc", "dashboard"]
)
@pytest.mark.parametrize("host", ["0.0.0.0", "[::]"])
def test_run_with_the_development_tokens_refuses_a_non_loopback_address(
    database_url: str, tmp_path: Path, setting: str, host: str
) -> None:
    env = production_env(
        database_url,
        LICENSE_SVC_TOKENS_FILE="<unset>",
        LICENSE_SVC_VAR_DIR=str(tmp_path),
        **{"LICENSE_SVC_DASHBOARD_LISTEN": "127.0.0.1:0", setting: f"{host}:{free_port()}"},
    )
    code, lines = run_cli(["run"], env)
    failures = [line for line in lines if "ERROR" in line]
    assert code == 2 and len(failures) == 1, lines
    assert setting in failures[0] and "development tokens" in failures[0]
