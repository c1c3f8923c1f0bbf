"""Projection rebuild (and the separate projection worker) through the service's own CLI.

The projections are being built alongside this harness, so nothing here assumes their names:
the CLI is asked (`license-svc projections --help`, `list`, or the choices of `rebuild`), and
everything is skipped, with a note, while `license-svc projections` does not exist.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.processes import service_env, stop_process

CLI = [sys.executable, "-m", "license_svc.entrypoints.cli.main"]
WORKER_COMMANDS = ("run", "worker", "follow")


def _cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str]:
    done = subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _choices(help_text: str) -> list[str]:
    found = re.search(r"\{([\w\-]+(?:,[\w\-]+)*)\}", help_text)
    return found.group(1).split(",") if found else []


def subcommands() -> list[str]:
    """The `license-svc projections` subcommands; [] while the command does not exist."""
    code, text = _cli(["projections", "--help"])
    return _choices(text) if code == 0 else []


def names(env: dict[str, str]) -> list[str]:
    """The projections' names, from `projections list` or `projections rebuild --help`."""
    commands = subcommands()
    if "list" in commands:
        code, text = _cli(["projections", "list"], env)
        if code == 0:
            listed = [line.split()[0] for line in text.splitlines() if line.strip()]
            if listed:
                return listed
    code, text = _cli(["projections", "rebuild", "--help"], env)
    return [c for c in _choices(text) if c] if code == 0 else []


@dataclass(frozen=True)
class Rebuild:
    name: str
    events: int
    seconds: float  # wall time minus the CLI's start-up
    startup: float
    ok: bool
    note: str

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.ok and self.seconds > 0 else 0.0


# "rebuilt NAME: 100,000 events in 3.2s (31,250 events/s); …": the rate is the precise one.
REPORTED = re.compile(r"rebuilt (\S+): ([\d,]+) events in [\d.]+s \(([\d,.]+) events/s\)")


def rebuild(database_url: str, name: str, events: int, log_dir: Path) -> Rebuild:
    """Run the CLI's rebuild; use the replay time it reports, else wall time minus start-up."""
    env = service_env(database_url, "127.0.0.1:0", 1)
    began = time.perf_counter()
    _cli(["projections", "--help"], env)
    startup = time.perf_counter() - began
    log_dir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    code, text = _cli(["projections", "rebuild", name], env, timeout=1800)
    wall = time.perf_counter() - began
    (log_dir / f"rebuild-{name}.log").write_text(text)
    if code != 0:
        return Rebuild(name, events, wall, startup, False, f"exit {code}: {text.strip()[-300:]}")
    reported = REPORTED.findall(text)
    if reported:
        replayed = sum(int(n.replace(",", "")) for _, n, _ in reported)
        seconds = sum(int(n.replace(",", "")) / float(r.replace(",", "")) for _, n, r in reported)
        return Rebuild(name, replayed, seconds, startup, True, f"wall {wall:.1f}s incl. start-up")
    return Rebuild(name, events, max(wall - startup, 1e-6), startup, True, "wall minus start-up")


def start_worker(database_url: str, log_dir: Path) -> subprocess.Popen[bytes] | None:
    """The projection worker as its own process (as in production), if the CLI has one."""
    command = next((c for c in WORKER_COMMANDS if c in subcommands()), None)
    if command is None:
        return None
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "projection-worker.log").open("ab") as log:
        return subprocess.Popen(
            [*CLI, "projections", command],
            env=service_env(database_url, "127.0.0.1:0", 1),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_worker(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        stop_process(process, 20)
