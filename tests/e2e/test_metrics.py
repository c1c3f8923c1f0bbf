"""`/metrics` after a known sequence of calls: gRPC counts per method and code, key counters
equal to the store's events, projection lag back to 0 once a worker catches up."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from license_svc.domain import codes
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import EVENTS_TABLE, unique
from tests.support import Client, ServerProcess
from tests.unit.test_deploy_monitoring import names_used
from tests.views_support import SMALL_POOLS, start_worker, stop, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
KEYS = "fiscobridge.licensing.v1.KeyService"
ACTIVATION = "fiscobridge.licensing.v1.ActivationService"


def scrape(server: ServerProcess) -> Samples:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def handled(samples: Samples, service: str, method: str, code: str) -> float:
    labels = {
        "grpc_type": "unary",
        "grpc_service": service,
        "grpc_method": method,
        "grpc_code": code,
    }
    return samples.get(("grpc_server_handled_total", tuple(sorted(labels.items()))), 0.0)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def store_count(database_url: str, event: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {EVENTS_TABLE} WHERE topic LIKE %s", (f"%.{event}",)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_metrics_count_the_calls_made_and_the_events_stored(own_database: str, tmp_path: Path):
    server = ServerProcess(own_database, tmp_path / "server.log", **SMALL_POOLS)
    try:
        client = server.client
        before = scrape(server)
        keys = client.issue(4).keys
        account = unique("acct")
        for key in keys[:3]:
            client.activate(key.code, account, unique("sess"))
        guesser, session = unique("acct"), unique("sess")
        for _ in range(5):  # five failures in one session block it (rules §4)
            with pytest.raises(grpc.RpcError):
                client.activate(codes.generate("INT").text(), guesser, session)
        with pytest.raises(grpc.RpcError):
            client.keys.GetKey(pb.GetKeyRequest(key_id=keys[0].key_id), timeout=10)  # no token
        stream = client.audit.StreamEvents(
            pb.StreamEventsRequest(after_position=0), metadata=Client.as_("auditor"), timeout=30
        )
        streamed = len(list(stream))  # events, checkpoints and the caught_up marker
        after = scrape(server)
        sent = ("grpc_server_msg_sent_total", (("grpc_method", "StreamEvents"),
                ("grpc_service", "fiscobridge.licensing.v1.AuditService"),
                ("grpc_type", "server_stream")))  # fmt: skip
        assert after[sent] - before[sent] == streamed > 0
        expected = [
            (KEYS, "IssueKeys", "OK", 1),
            (ACTIVATION, "ActivateKey", "OK", 3),
            (ACTIVATION, "ActivateKey", "FAILED_PRECONDITION", 5),
            (KEYS, "GetKey", "UNAUTHENTICATED", 1),
            (KEYS, "RevokeKey", "OK", 0),
        ]
        for service, method, code, count in expected:
            delta = handled(after, service, method, code) - handled(before, service, method, code)
            assert delta == count, (method, code)
        assert value(after, "license_svc_keys_issued_total") == store_count(
            own_database, "KeyIssued"
        )
        assert value(after, "license_svc_keys_activated_total") == 3
        assert value(after, "license_svc_keys_activated_total") == store_count(
            own_database, "KeyActivated"
        )
        assert value(after, "license_svc_blocked_sessions") == 1
        reasons = {
            labels: n
            for (name, labels), n in after.items()
            if name == "license_svc_failed_attempts_total"
        }
        assert sum(reasons.values()) == 5
        assert value(after, "license_svc_db_pool_size") >= 1
        assert value(after, "process_resident_memory_bytes") > 0  # the process's own series
        assert ("python_gc_collections_total", (("generation", "0"),)) in after
        # No worker yet: every view lags by the whole store.
        head = value(after, "license_svc_store_position")
        assert head >= 7
        assert value(after, "license_svc_projection_lag_events", view="catalog") == head

        worker = start_worker(own_database, tmp_path / "worker.log")
        try:
            wait_until(
                lambda: all(
                    n == 0
                    for (name, _), n in scrape(server).items()
                    if name == "license_svc_projection_lag_events"
                ),
                "every view's lag back to 0",
            )
        finally:
            stop(worker)
        # A webhook endpoint, so its series (one per endpoint) are exposed too.
        server.client.webhooks.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(reseller_id="acme", url="https://93.184.215.14/in"),
            metadata=Client.as_("ops"),
        )
        caught_up = scrape(server)
        assert value(caught_up, "license_svc_projection_position", view="summary") == head
        exposed = {name for name, _ in caught_up}
        assert names_used() - exposed == set()  # deploy/'s rules and dashboard query real series
    finally:
        server.stop()


def test_metrics_listen_empty_turns_the_endpoint_off(own_database: str, tmp_path: Path):
    server = ServerProcess(
        own_database, tmp_path / "server.log", LICENSE_SVC_METRICS_LISTEN="", **SMALL_POOLS
    )
    try:
        with pytest.raises(OSError):
            scrape(server)
        assert isinstance(server.client, Client)
    finally:
        server.stop()
