"""The webhooks process under faults: the receiver down for a while and the sender SIGKILLed
twice meanwhile, and still every message of the log arrives at least once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import EVENTS_TABLE
from tests.support import Client, ServerProcess, WebhookProcess, free_port
from tests.webhook_receiver import Receiver

HOOKS_ENV = {
    "LICENSE_SVC_WEBHOOK_ALLOW_PRIVATE": "on",
    "LICENSE_SVC_WEBHOOK_TIMEOUT_SECONDS": "1",  # a lease of 8 s outlives a killed sender
    "LICENSE_SVC_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "LICENSE_SVC_WEBHOOK_POLL_SECONDS": "0.1",
}


@pytest.mark.slow
def test_every_message_arrives_after_the_receiver_was_down_and_the_sender_killed_twice(
    database_url: str, tmp_path: Path, sql: psycopg.Connection
) -> None:
    port = free_port()  # nothing listens there yet: the receiver is down
    server = ServerProcess(
        database_url, tmp_path / "server.log", LICENSE_SVC_WEBHOOK_ALLOW_PRIVATE="on"
    )
    senders: list[WebhookProcess] = []
    receiver: Receiver | None = None
    try:
        created = server.client.webhooks.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(url=f"http://127.0.0.1:{port}/hooks"),
            metadata=Client.as_("globex"),
        )
        for round_ in range(3):
            senders.append(
                WebhookProcess(database_url, tmp_path / f"hooks-{round_}.log", **HOOKS_ENV)
            )
            issued = server.client.issue(3, reseller="globex")
            for n, key in enumerate(issued.keys):
                server.client.activate(key.code, f"acct-fault-{round_}-{n}", session=f"s-{round_}")
            if round_ < 2:
                _wait_for_failed_attempts(sql, created.endpoint_id, at_least=round_ + 1)
                senders[-1].kill()  # SIGKILL: mid-lease, mid-transaction, whatever it was doing
        _wait_until_routed(sql)
        receiver = Receiver(port=port, path="/hooks")
        receiver.secret = created.secret
        expected = sql.execute(
            "SELECT message_id FROM webhook_deliveries WHERE endpoint_id = %s",
            (created.endpoint_id,),
        ).fetchall()
        assert len(expected) == 3 * (1 + 3)  # per round: one batch.issued, three activations
        wanted = {row[0] for row in expected}
        receiver.wait_for(lambda r: wanted <= {m.webhook_id for m in r.received}, timeout=180)
        assert all(m.verified for m in receiver.received)
    finally:
        if receiver is not None:
            receiver.stop()
        for sender in senders:
            if sender.process.poll() is None:
                sender.stop()
        server.client.webhooks.DeleteWebhookEndpoint(
            pb.DeleteWebhookEndpointRequest(endpoint_id=created.endpoint_id),
            metadata=Client.as_("globex"),
        )
        server.stop()


def _wait_until_routed(sql: psycopg.Connection) -> None:
    """Until the router's tracking position has reached the store's head."""
    _poll(
        lambda: sql.execute(
            f"SELECT (SELECT max(notification_id) FROM webhooks_tracking"
            f" WHERE application_name = 'licensing') >= (SELECT max(notification_id)"
            f" FROM {EVENTS_TABLE})"
        ).fetchone()[0],  # type: ignore[index]
        "the router did not reach the store's head",
    )


def _poll(done: Callable[[], object], failure: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.05)
    raise TimeoutError(failure)


def _wait_for_failed_attempts(sql: psycopg.Connection, endpoint_id: str, at_least: int) -> None:
    """Until the sender has tried (and failed) at least so many times: it is mid-work."""
    _poll(
        lambda: sql.execute(
            "SELECT count(*) >= %s FROM webhook_attempts WHERE endpoint_id = %s",
            (at_least, endpoint_id),
        ).fetchone()[0],  # type: ignore[index]
        "the sender made no attempt",
    )
