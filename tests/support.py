"""Test helpers: a controllable clock, a gRPC client with tokens, a server process."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_status import rpc_status

from bench.processes import wait_until_serving
from license_svc import config
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.client.common import ServiceStubs
from tests import roles

if TYPE_CHECKING:
    from license_svc.bootstrap import Service

REPO = Path(__file__).resolve().parents[1]
TEST_PEPPER = "test-pepper-not-a-secret-0123456789"


@functools.cache
def signing_key_file() -> Path:
    """The allowance tokens' signing key of this test run (a new one each run, 0600)."""
    return config.temporary_signing_key("license-svc-signing-")


TOKENS = {
    "acme": "dev-reseller-acme",
    "globex": "dev-reseller-globex",
    "portal": "dev-portal",
    "integrations": "dev-integrations",
    "auditor": "dev-auditor",
    "ops": "dev-ops",
    "billing": "dev-billing",
}


def issue_request(count: int = 1, reseller: str = "acme", **fields: Any) -> pb.IssueKeysRequest:
    """An IssueKeysRequest of `count` keys: Growth, 3 seats, 12 months, a new request_id, unless
    `fields` say otherwise."""
    request = pb.IssueKeysRequest(
        reseller_id=fields.pop("reseller_id", reseller),
        product=fields.pop("product", pb.PRODUCT_INTEGRATIONS),
        tier=fields.pop("tier", pb.TIER_GROWTH),
        seats=fields.pop("seats", 3),
        period_months=fields.pop("period_months", 12),
        count=count,
        request_id=fields.pop("request_id", f"req-{time.time_ns()}-{os.getpid()}"),
    )
    assert not fields, fields
    return request


def hold_issuing(service: Service) -> tuple[threading.Event, threading.Event]:
    """Makes every IssueKeys whose request_id starts with "holder" wait, inside its minting
    slot, until the second event is set; the first is set once one waits."""
    store, inside, release = service.app.store, threading.Event(), threading.Event()
    find = store.find_issue_request

    def blocking_find(reseller_id: str, request_id: str) -> Any:
        if request_id.startswith("holder"):
            inside.set()
            release.wait(60)
        return find(reseller_id, request_id)

    store.find_issue_request = blocking_find  # type: ignore[method-assign]
    return inside, release


class FakeClock:
    """An injected clock: tests move time instead of sleeping."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, now: datetime) -> None:
        with self._lock:
            self._now = now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


class Client(ServiceStubs):
    """Typed stubs on one channel; `as_(role)` picks the bearer token per call."""

    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None = None) -> None:
        self.address = address
        self.channel = (
            grpc.insecure_channel(address)
            if credentials is None
            else grpc.secure_channel(address, credentials)
        )
        super().__init__(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    @staticmethod
    def as_(role: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {TOKENS[role]}"),)

    def issue(self, count: int = 1, reseller: str = "acme", **fields: Any) -> pb.IssueKeysResponse:
        request = issue_request(count, reseller, **fields)
        response: pb.IssueKeysResponse = self.keys.IssueKeys(
            request, metadata=self.as_(reseller), timeout=60
        )
        return response

    def activate(self, code: str, account: str, session: str = "s-1") -> pb.ActivateKeyResponse:
        response: pb.ActivateKeyResponse = self._dialog(
            self.activation.ActivateKey, pb.ActivateKeyRequest, code, account, session
        )
        return response

    def validate(self, code: str, account: str, session: str = "s-1") -> pb.ValidateKeyResponse:
        response: pb.ValidateKeyResponse = self._dialog(
            self.activation.ValidateKey, pb.ValidateKeyRequest, code, account, session
        )
        return response

    def _dialog(self, method: Any, request: Any, code: str, account: str, session: str) -> Any:
        """One step of the activation dialog, as the portal (Integrations)."""
        return method(
            request(
                code=code, account_id=account, session_id=session, product=pb.PRODUCT_INTEGRATIONS
            ),
            metadata=self.as_("portal"),
            timeout=10,
        )

    def wait_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        wait_until_serving(self.health, deadline, f"server at {self.address}", timeout)

    def close(self) -> None:
        self.channel.close()


def error_reason(error: grpc.RpcError) -> str:
    """The ErrorInfo.reason of a failed call ('' if none)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`license-svc serve` in a child process, its log captured to a file."""

    command: Sequence[str] = ("serve",)
    module = "license_svc.entrypoints.cli.main"  # tests.offset_cli: the test clock honoured

    def __init__(self, database_url: str, log_path: Path, **env: str) -> None:
        command = self.command
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.log_path = log_path
        full_env = {
            **os.environ,
            "LICENSE_SVC_DATABASE_URL": roles.service_url(database_url),
            "LICENSE_SVC_PEPPER": TEST_PEPPER,
            "LICENSE_SVC_SIGNING_KEY_FILE": str(signing_key_file()),
            "LICENSE_SVC_LISTEN": self.address,
            "LICENSE_SVC_TOKENS_FILE": str(REPO / "deploy" / "dev" / "tokens.json"),
            "LICENSE_SVC_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            **env,
        }
        if command[0] != "serve":
            full_env["LICENSE_SVC_HEALTH_LISTEN"] = full_env.pop("LICENSE_SVC_LISTEN")
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *command],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = self.new_client()
        try:
            self.client.wait_serving()
        except TimeoutError:
            self.stop()
            raise

    def new_client(self) -> Client:
        """A client of this server (a TLS server's subclass gives it credentials)."""
        return Client(self.address)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup (a crash)."""
        self.client.close()
        self.process.kill()
        self.process.wait()
        self._log.close()

    def stop(self, timeout: float = 30) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code


class WorkerProcess(ServerProcess):
    """`license-svc project`; `address` is its health endpoint (LICENSE_SVC_HEALTH_LISTEN)."""

    command = ("project",)


class SweeperProcess(ServerProcess):
    """`license-svc expire`; `address` is its health endpoint."""

    command = ("expire",)


class WebhookProcess(ServerProcess):
    """`license-svc webhooks` (the router and sender); `address` is its health endpoint."""

    command = ("webhooks",)


@contextmanager
def server_process(database_url: str, log_path: Path, **env: str) -> Iterator[ServerProcess]:
    server = ServerProcess(database_url, log_path, **env)
    try:
        yield server
    finally:
        server.stop()
