"""Issue and activation load on a replica, every call's outcome and duration kept: the partition
tests judge the calls made while the database went silent."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import unique
from tests.support import Client, issue_request

CALL_DEADLINE = 10.0  # seconds: every call of the load carries this gRPC deadline


@dataclass(frozen=True)
class Call:
    replica: str
    method: str
    started: float  # time.monotonic()
    took: float
    code: grpc.StatusCode


@dataclass
class Load:
    """`threads` threads per replica, each issuing a key and activating it, until `stop()`."""

    clients: dict[str, Client]
    threads: int = 2
    calls: list[Call] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for replica in self.clients:
            for _ in range(self.threads):
                thread = threading.Thread(target=self._loop, args=(replica,), daemon=True)
                thread.start()
                self._running.append(thread)

    def stop(self) -> list[Call]:
        self._stopping.set()
        for thread in self._running:
            thread.join(CALL_DEADLINE * 3)
        with self._lock:
            return list(self.calls)

    def _loop(self, replica: str) -> None:
        client = self.clients[replica]
        while not self._stopping.is_set():
            issued = self._call(replica, "IssueKeys", functools.partial(_issue, client))
            if issued is None:
                time.sleep(0.05)  # the replica is away: do not spin
                continue
            account = unique("acct")
            self._call(
                replica, "ActivateKey", functools.partial(_activate, client, issued, account)
            )

    def _call(self, replica: str, method: str, call: Callable[[], str]) -> str | None:
        started = time.monotonic()
        answer: str | None = None
        try:
            answer = call()
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
        with self._lock:
            self.calls.append(Call(replica, method, started, time.monotonic() - started, code))
        return answer


def _issue(client: Client) -> str:
    request = issue_request(
        request_id=f"req-{time.time_ns()}-{os.getpid()}-{threading.get_ident()}"
    )
    answer = client.keys.IssueKeys(request, metadata=client.as_("acme"), timeout=CALL_DEADLINE)
    return str(answer.keys[0].code)


def _activate(client: Client, code: str, account: str) -> str:
    request = pb.ActivateKeyRequest(
        code=code, account_id=account, session_id="s-1", product=pb.PRODUCT_INTEGRATIONS
    )
    client.activation.ActivateKey(request, metadata=client.as_("portal"), timeout=CALL_DEADLINE)
    return code
