"""The README's quick start, as a newcomer meets it: a real `license-svc run` (embedded
PostgreSQL, development pepper and tokens, in a temporary folder's var/), then the README's own
walkthrough commands, copied from the README, in a shell; and the maintenance commands beside
it with no LICENSE_SVC_* setting at all."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO, Client, free_port

SCRIPT = Path(sys.executable).with_name("license-svc")
# Lines that follow a stream until Ctrl-C: the test presses it once they have printed a line.
FOLLOWS = re.compile(r"\bwatch\b|--follow")


@dataclass
class DevRun:
    folder: Path
    target: str
    page: str
    process: subprocess.Popen[bytes]


def bare_env() -> dict[str, str]:
    """The environment without a single LICENSE_SVC_* variable, and the venv on the PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}
    env["PATH"] = f"{SCRIPT.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def dev_run() -> Iterator[DevRun]:
    """`license-svc run` in a fresh folder, as `make run` starts it; only its ports are moved
    off the defaults, so it never meets another run on this machine. The folder is made as
    the suite's embedded database's is (pytest's own are private to us, and as root the
    embedded PostgreSQL runs as a user of its own, which must reach its data)."""
    folder = Path(tempfile.mkdtemp(prefix="license-svc-quickstart-"))
    folder.chmod(0o755)
    target, page = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = bare_env() | {
        "LICENSE_SVC_LISTEN": target,
        "LICENSE_SVC_DASHBOARD_LISTEN": page,
        "LICENSE_SVC_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
    }
    log = (folder / "run.log").open("wb")
    process = subprocess.Popen(
        [str(SCRIPT), "run"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    client = Client(target)
    try:
        client.wait_serving(timeout=240)
        yield DevRun(folder, target, page, process)
    finally:
        client.close()
        process.send_signal(signal.SIGINT)  # as Ctrl-C: stops the embedded database too
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def here(dev_run: DevRun, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], cwd=dev_run.folder, env=bare_env(), capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip


def test_maintenance_commands_find_the_running_development_database_by_themselves(
    dev_run: DevRun,
) -> None:
    listed = here(dev_run, "projections", "list")
    assert listed.returncode == 0, listed.stderr
    assert {"summary", "allowance", "catalog"} <= {
        line.split()[0] for line in listed.stdout.splitlines()
    }
    said = [line for line in listed.stderr.splitlines() if "development:" in line]
    assert len(said) == 1 and "var" in said[0] and "pepper" in said[0]

    shown = here(dev_run, "attempts", "show", "--account", "A")
    assert shown.returncode == 0, shown.stderr
    assert '"failed_attempts"' in shown.stdout and "development:" in shown.stderr


def test_production_commands_still_demand_their_settings(dev_run: DevRun, tmp_path: Path) -> None:
    for command in (["serve"], ["project"], ["expire", "--once"]):
        refused = here(dev_run, *command)
        assert refused.returncode == 2 and "LICENSE_SVC_" in refused.stderr
    elsewhere = subprocess.run(
        [str(SCRIPT), "projections", "list"], cwd=tmp_path, env=bare_env(),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert elsewhere.returncode == 2 and "LICENSE_SVC_DATABASE_URL" in elsewhere.stderr


def walkthrough() -> list[str]:
    """The shell block that follows `make run` in the README's quick start, line by line."""
    readme = (REPO / "README.md").read_text()
    quick = readme[readme.index("## Quick start") :]
    blocks = re.findall(r"```sh\n(.*?)```", quick, flags=re.DOTALL)
    assert "make run" in blocks[0]
    return [line for line in blocks[1].splitlines() if line.strip()]


def run_line(dev_run: DevRun, shell_state: str, line: str) -> subprocess.CompletedProcess[str]:
    """One README line in bash, with the variables the lines before it set (CODE=…)."""
    env = bare_env() | {"LICENSE_SVC_TARGET": dev_run.target}
    before, _, last = line.rpartition(" && ")
    if before and FOLLOWS.search(last):  # `read && follow`: the read, then the follower alone,
        done = run_line(dev_run, shell_state, before)  # so Ctrl-C reaches the follower
        if done.returncode != 0:
            return done
        line = last
    script = f"set -e\n{shell_state}\n{line}\n"
    if not FOLLOWS.search(line):
        return subprocess.run(["bash", "-c", script], cwd=dev_run.folder, env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    follower = subprocess.Popen(
        ["bash", "-c", script], cwd=dev_run.folder, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert follower.stdout is not None
    first = follower.stdout.readline()
    os.killpg(follower.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
    rest, err = follower.communicate(timeout=60)
    return subprocess.CompletedProcess(follower.args, 0 if first else 1, first + rest, err)


def test_the_readme_walkthrough_runs_as_written(dev_run: DevRun) -> None:
    lines = walkthrough()
    assert len(lines) == 5
    roles = ["dev-reseller-acme", "dev-portal", "dev-integrations", "dev-auditor", "dev-ops"]
    assert all(token in line for token, line in zip(roles, lines, strict=True))
    state = ""
    for line in lines:
        sets_code = line.startswith("CODE=$(")  # the reseller's line: the code the others use
        done = run_line(dev_run, state, f'{line}\necho "$CODE"' if sets_code else line)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        assert done.stdout.strip(), line
        if sets_code:
            assert re.fullmatch(r"INT(-[0-9A-Z]{4}){3}", done.stdout.strip())
            state = f"CODE={done.stdout.strip()}"
    request = urllib.request.Request(
        f"http://{dev_run.page}/", headers={"Authorization": "Bearer dev-ops"}
    )
    with urllib.request.urlopen(request, timeout=30) as page:  # ops opens the page
        assert page.status == 200 and b"acme" in page.read()


def test_the_page_takes_the_products_other_spellings_too(dev_run: DevRun) -> None:
    for spelled in ("cloud_pos", "cloud-pos", "PRODUCT_CLOUD_POS"):
        request = urllib.request.Request(
            f"http://{dev_run.page}/?product={spelled}", headers={"Authorization": "Bearer dev-ops"}
        )
        with urllib.request.urlopen(request, timeout=30) as page:
            assert page.status == 200
            assert b'<option value="cloud_pos" selected>cloud_pos</option>' in page.read()


def test_the_client_speaks_as_development_ops_beside_run_when_given_no_token(
    dev_run: DevRun,
) -> None:
    done = here(dev_run, "status", "--target", dev_run.target)
    assert done.returncode == 0, done.stderr
    assert "summary" in done.stdout
    said = [line for line in done.stderr.splitlines() if "development:" in line]
    assert len(said) == 1 and "dev-ops" in said[0]


def test_ctrl_c_stops_run_cleanly_without_a_grpc_fork_line(dev_run: DevRun) -> None:
    """Last: it stops the module's run. Stopping the embedded database forks pg_ctl while gRPC
    threads are up; gRPC's fork handlers (off in the console script) printed a line for it."""
    dev_run.process.send_signal(signal.SIGINT)
    assert dev_run.process.wait(120) == 0
    log = (dev_run.folder / "run.log").read_text()
    assert "stopped" in log and "fork_posix" not in log and "Traceback" not in log
