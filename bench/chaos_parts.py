"""The chaos run's parts: child processes it can kill, the load it keeps up, the checks after.

- `Child`: one `license-svc` command (a server replica, the worker, the sweeper) on a fixed
  port (a server's gRPC port, or the worker's and sweeper's health endpoint), restartable.
- `Load`: threads issuing and activating keys on both replicas; a failed IssueKeys is replayed
  with its `request_id`; some codes are redeemed by a second account, racing or later. Every
  answer's code and duration is recorded; only OK answers count as acknowledged writes.
- `store_facts` / `view_differences`: what the store and the views hold, read with SQL.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.processes import BENCH_PEPPER, bench_signing_key, free_port
from bench.scenarios import issue_request
from license_svc.config import DEV_TOKENS
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc
from projections.generations import differences as generation_differences
from projections.registry import NAMES, view_class

# Reconnect quickly after a replica restarts (gRPC's default back-off grows to minutes).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
]
TOKENS = {"acme": "dev-reseller-acme", "portal": "dev-portal", "ops": "dev-ops"}

P = TypeVar("P")


def clean_environ() -> dict[str, str]:
    """This process's environment without any LICENSE_SVC_* setting of the caller's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}


def child_env(url: str) -> dict[str, str]:
    """What every drill's `license-svc` child runs with: the database, the bench's pepper,
    tokens and signing key, metrics on a port of its own (several replicas on one host)."""
    return {
        **clean_environ(),
        "LICENSE_SVC_DATABASE_URL": url,
        "LICENSE_SVC_PEPPER": BENCH_PEPPER,
        "LICENSE_SVC_TOKENS_FILE": str(DEV_TOKENS),
        "LICENSE_SVC_SIGNING_KEY_FILE": str(bench_signing_key()),
        "LICENSE_SVC_METRICS_LISTEN": "127.0.0.1:0",
    }


def auth(role: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKENS[role]}"),)


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, logs: Path):
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log_path = logs / f"{name}.log"
        self.address = f"127.0.0.1:{port}"
        self.channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "license_svc.entrypoints.cli.main", *self.argv],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def health(self) -> str:
        try:
            answer = self._health.Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError as error:
            return str(error.code().name)  # type: ignore[attr-defined]
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    def wait_health(self, wanted: str, timeout: float = 60) -> float:
        """Seconds until health reads `wanted`."""
        started = time.monotonic()
        while self.health() != wanted:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}: {self.log_path}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{self.name} not {wanted} after {timeout}s: {self.log_path}")
            time.sleep(0.02)
        return time.monotonic() - started


@dataclass
class Call:
    method: str
    code: str
    started: float
    ended: float


@dataclass
class Acks:
    keys: dict[str, str] = field(default_factory=dict)  # key_id → code
    activations: dict[str, set[str]] = field(default_factory=dict)  # key_id → accounts
    last_ack: float = 0.0


class Load:
    def __init__(self, servers: list[Child], clients: int) -> None:
        self._stubs = [
            (pb_grpc.KeyServiceStub(s.channel), pb_grpc.ActivationServiceStub(s.channel))
            for s in servers
        ]
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._codes: list[tuple[str, str]] = []  # (key_id, code) ready to redeem
        self.calls: list[Call] = []
        self.acks = Acks()
        self.replayed_differently: list[str] = []

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(30)

    def codes(self) -> Counter[str]:
        with self._lock:
            return Counter(call.code for call in self.calls)

    def _call(self, method: str, stub_call: Any, request: Any, role: str) -> Any:
        started = time.monotonic()
        code, answer = "OK", None
        try:
            answer = stub_call(request, metadata=auth(role), timeout=5)
        except grpc.RpcError as error:
            code = error.code().name  # type: ignore[attr-defined]
        with self._lock:
            self.calls.append(Call(method, code, started, time.monotonic()))
        return answer

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        turn = index
        while not self._stopping.is_set():
            turn += 1
            keys, activation = self._stubs[turn % len(self._stubs)]
            with self._lock:
                code = self._codes.pop(rng.randrange(len(self._codes))) if self._codes else None
            if code is None or rng.random() < 0.3:
                self._issue(keys, rng)
            if code is not None:
                self._activate(activation, code, rng)

    def _issue(self, keys: Any, rng: random.Random) -> None:
        request = issue_request(count=4)
        first: list[str] | None = None
        for attempt in range(20):  # replay until acknowledged (a replica may be down)
            other = self._stubs[(attempt + rng.randrange(2)) % len(self._stubs)][0]
            answer = self._call(
                "IssueKeys", (keys if attempt == 0 else other).IssueKeys, request, "acme"
            )
            if answer is not None:
                got = [k.code for k in answer.keys]
                if first is not None and got != first:
                    self.replayed_differently.append(request.request_id)
                first = got
                with self._lock:
                    for key in answer.keys:
                        self.acks.keys[key.key_id] = key.code
                        self._codes.append((key.key_id, key.code))
                    self.acks.last_ack = time.monotonic()
                return
            if self._stopping.wait(0.1):
                return

    def _activate(self, activation: Any, key: tuple[str, str], rng: random.Random) -> None:
        key_id, code = key
        account = f"acct-{uuid.uuid4().hex[:10]}"
        request = pb.ActivateKeyRequest(
            code=code,
            account_id=account,
            session_id=f"s-{uuid.uuid4().hex[:8]}",
            product=pb.PRODUCT_INTEGRATIONS,
        )
        answer = self._call("ActivateKey", activation.ActivateKey, request, "portal")
        with self._lock:
            if answer is not None:
                self.acks.activations.setdefault(key_id, set()).add(account)
                self.acks.last_ack = time.monotonic()
            if rng.random() < 0.3 or answer is None:  # a second account tries (or a retry)
                self._codes.append(key)


def head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM licensing_events").fetchone()
    return int(row[0]) if row else 0


def live_positions(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Each view's live generation's position (0 before it exists)."""
    found = {}
    for name, live in conn.execute("SELECT name, live FROM view_generations").fetchall():
        row = conn.execute(
            f"SELECT coalesce(max(notification_id), 0) FROM {name}_g{live}_tracking"
        ).fetchone()
        found[str(name)] = int(row[0]) if row else 0
    return found


def views_at(conn: psycopg.Connection[Any], target: int) -> bool:
    positions = live_positions(conn)
    return len(positions) >= len(NAMES) and min(positions.values()) >= target


def wait_views_at(conn: psycopg.Connection[Any], target: int, timeout: float) -> float:
    """Seconds until every view has taken in position `target` (polled on `conn`)."""
    started = time.monotonic()
    while not views_at(conn, target):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"views not at position {target} after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - started


def store_facts(conn: psycopg.Connection[Any], key_ids: list[str]) -> tuple[int, list[str]]:
    """(how many of `key_ids` the store holds, keys with more than one KeyActivated)."""
    ids = [uuid.UUID(k) for k in key_ids]
    row = conn.execute(
        "SELECT count(DISTINCT originator_id) FROM licensing_events"
        " WHERE originator_version = 1 AND originator_id = ANY(%s)",
        (ids,),
    ).fetchone()
    doubles = conn.execute(
        "SELECT originator_id FROM licensing_events WHERE topic LIKE '%%KeyActivated'"
        " GROUP BY originator_id HAVING count(*) > 1"
    ).fetchall()
    return (int(row[0]) if row else 0), [str(d[0]) for d in doubles]


def generations(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT name, live FROM view_generations").fetchall()
    return {str(name): int(live) for name, live in rows}


def view_differences(conn: psycopg.Connection[Any], name: str, one: int, other: int) -> int:
    """Rows of view `name`'s tables in one generation and not the other (both ways)."""
    return sum(generation_differences(conn, view_class(name), one, other).values())


def children_for(url: str, logs: Path) -> tuple[list[Child], list[Child]]:
    """Two server replicas, and the projection worker and the sweeper (on health ports)."""
    env = {
        **child_env(url),
        "LICENSE_SVC_SWEEP_INTERVAL_SECONDS": "1",
        # Small pools: the machine's PostgreSQL is shared, and the load is a few clients.
        "LICENSE_SVC_POOL_SIZE": "2",
        "LICENSE_SVC_POOL_MAX_OVERFLOW": "4",
    }
    servers = []
    for i in range(2):
        port = free_port()
        servers.append(
            Child(
                f"server-{i}",
                ["serve"],
                {**env, "LICENSE_SVC_LISTEN": f"127.0.0.1:{port}"},
                port,
                logs,
            )
        )
    others = []
    for name, command in (("worker", "project"), ("sweeper", "expire")):
        port = free_port()
        health_env = {
            **env,
            "LICENSE_SVC_LISTEN": "127.0.0.1:0",
            "LICENSE_SVC_HEALTH_LISTEN": f"127.0.0.1:{port}",
        }
        others.append(Child(name, [command], health_env, port, logs))
    return servers, others


def start_in_turn(children: list[Child]) -> None:
    for child in children:  # one after the other: the first creates the schema
        child.start()
        child.wait_health("SERVING", timeout=120)


def drill_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The command line of `python -m bench.<module>`, described by its docstring's first line."""
    return argparse.ArgumentParser(
        prog=f"python -m bench.{module}", description=(doc or "").splitlines()[0]
    )


def plan_options(
    parser: argparse.ArgumentParser, plan: type[P], names: Sequence[str]
) -> Callable[[argparse.Namespace], P]:
    """An option `--<name>` for each of the plan's fields `names`, typed and defaulted as the
    field; returns how to build the plan from the parsed options (other fields: defaults)."""
    defaults = {f.name: f.default for f in fields(plan)}  # type: ignore[arg-type]
    for name in names:
        default = defaults[name]
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return lambda args: plan(**{name: getattr(args, name) for name in names})


def drill_logs(name: str) -> Path:
    """A new folder for the children's logs, named on stdout."""
    logs = Path(tempfile.mkdtemp(prefix=f"license-svc-{name}-"))
    print(f"{name}: logs in {logs}")
    return logs


class Verdict(Protocol):
    def print(self) -> None: ...

    def failures(self) -> list[str]: ...


def printed_exit_code(report: Verdict) -> int:
    """Prints the report; the exit code: 1 when an invariant failed."""
    report.print()
    return 1 if report.failures() else 0
