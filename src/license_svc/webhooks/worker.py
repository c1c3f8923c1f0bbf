"""The webhooks of one process (`license-svc webhooks`, and inside `license-svc run`): the
router following the store's log, the reminders, and the sender's dispatcher and its threads.

- Router: routes whatever is new, then waits for the store's NOTIFY (every append sends one)
  or `poll` seconds, whichever comes first. Any number of processes may run one.
- Reminders: every `remind_interval` seconds; then finished deliveries older than `retention`
  are deleted, a batch per transaction.
- Dispatcher: claims due deliveries for its free threads (`threads` in all) and at most
  `per_endpoint` of them per endpoint in this process, so an endpoint that never answers holds
  at most `per_endpoint` threads, each for one timeout per attempt, and every other endpoint
  keeps the rest. It claims again when a thread frees up, when the router recorded deliveries,
  or after `poll` seconds (retries fall due, other processes record deliveries).
Errors (the database away) are logged and retried after a short pause; no loop dies of one.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg

from license_svc.adapters.threads import Threads

from .router import BATCH, Reminders, Router
from .sender import Claim, Sender

log = logging.getLogger("license_svc.webhooks")
PAUSE_AFTER_ERROR = 0.5


class WebhookWorker(Threads):
    def __init__(
        self,
        router: Router,
        reminders: Reminders,
        sender: Sender,
        *,
        conninfo: str,
        channel: str,
        threads: int = 16,
        poll: float = 0.5,
        remind_interval: float = 60.0,
        retention: timedelta = timedelta(days=30),
    ) -> None:
        self._router = router
        self._reminders = reminders
        self._sender = sender
        self._conninfo = conninfo
        self._channel = channel
        self._threads = threads
        self._poll = poll
        self._remind_interval = remind_interval
        self._retention = retention
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook-send")
        super().__init__(
            [
                threading.Thread(target=self._route_loop, name="webhook-router", daemon=True),
                threading.Thread(target=self._remind_loop, name="webhook-reminders", daemon=True),
                threading.Thread(target=self._dispatch_loop, name="webhook-dispatch", daemon=True),
            ]
        )

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        self.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._sender.close()

    # -- loops -----------------------------------------------------------------------------

    def _guarded(self, name: str, step: Callable[[], None]) -> None:
        while not self._stopping.is_set():
            try:
                step()
            except Exception as error:
                log.warning("webhooks %s: %s", name, " ".join(str(error).split()))
                self._stopping.wait(PAUSE_AFTER_ERROR)

    def _route_loop(self) -> None:
        self._guarded("router", self._route_while_connected)

    def _route_while_connected(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(f'LISTEN "{self._channel}"')
            while not self._stopping.is_set():
                events, recorded = self._router.route_once()
                if recorded:
                    self._wake.set()
                if events >= BATCH:
                    continue  # more is waiting
                for _ in conn.notifies(timeout=self._poll, stop_after=1):
                    pass

    def _remind_loop(self) -> None:
        def step() -> None:
            if self._reminders.remind_once():
                self._wake.set()
            before = self._router.clock() - self._retention
            while self._router.tables.purge_finished(before) and not self._stopping.is_set():
                pass
            self._stopping.wait(self._remind_interval)

        self._guarded("reminders", step)

    def _dispatch_loop(self) -> None:
        self._guarded("sender", self._dispatch_once)

    def _dispatch_once(self) -> None:
        per_endpoint = self._sender.policy.per_endpoint
        self._wake.clear()  # before counting: a thread that frees up from now on wakes us
        with self._lock:
            free = self._threads - sum(self._in_flight.values())
            busy = [e for e, n in self._in_flight.items() if n >= per_endpoint]
        claims = self._sender.claim(free, busy) if free > 0 else []
        spare: list[Claim] = []
        for claim in claims:
            with self._lock:
                if self._in_flight[claim.endpoint_id] >= per_endpoint:
                    spare.append(claim)
                    continue
                self._in_flight[claim.endpoint_id] += 1
            self._pool.submit(self._send, claim)
        self._sender.release(spare)
        if not claims or spare:
            self._wake.wait(self._poll)

    def _send(self, claim: Claim) -> None:
        try:
            self._sender.deliver(claim)
        except Exception as error:  # the lease expires and another try follows
            log.warning("webhooks sender: %s", " ".join(str(error).split()))
        finally:
            with self._lock:
                self._in_flight[claim.endpoint_id] -= 1
                if self._in_flight[claim.endpoint_id] <= 0:
                    del self._in_flight[claim.endpoint_id]
            self._wake.set()
