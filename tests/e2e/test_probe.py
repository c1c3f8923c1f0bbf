"""`python -m license_svc.entrypoints.probe`, the container health check of deploy/compose.yaml."""

from __future__ import annotations

from license_svc.entrypoints import probe
from tests.support import ServerProcess, free_port


def test_the_probe_passes_on_a_serving_server(server: ServerProcess) -> None:
    assert probe.main([server.address]) == 0


def test_the_probe_fails_where_nothing_answers() -> None:
    assert probe.main([f"127.0.0.1:{free_port()}"]) == 1
