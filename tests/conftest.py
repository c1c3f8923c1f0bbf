"""Fixtures shared by every test layer. The database is always a real PostgreSQL:
LICENSE_SVC_TEST_DATABASE_URL, else an embedded one started for this run."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from license_svc import bootstrap, config
from license_svc.adapters import embedded as embedded_db
from license_svc.bootstrap import Service
from license_svc.entrypoints.api.server import server_for
from tests.support import TEST_PEPPER, Client, FakeClock, ServerProcess, signing_key_file
from tests.views_support import fresh_database


@pytest.fixture(scope="session")
def database_url() -> str:
    url = os.environ.get("LICENSE_SVC_TEST_DATABASE_URL")
    if url:
        return url
    folder = Path(tempfile.mkdtemp(prefix="license-svc-test-"))
    return embedded_db.start(folder / "pg", keep=False)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> config.Settings:
    return config.load(
        {
            "LICENSE_SVC_DATABASE_URL": database_url,
            "LICENSE_SVC_PEPPER": TEST_PEPPER,
            "LICENSE_SVC_VAR_DIR": str(tmp_path_factory.mktemp("var")),
            "LICENSE_SVC_TOKENS_FILE": str(config.DEV_TOKENS),
            "LICENSE_SVC_SIGNING_KEY_FILE": str(signing_key_file()),
            "LICENSE_SVC_LISTEN": "127.0.0.1:0",
            "LICENSE_SVC_METRICS_LISTEN": "127.0.0.1:0",  # each in-process server its own port
        }
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_service(settings: config.Settings) -> Iterator[Callable[..., Service]]:
    """Build in-process services (real Postgres) with an injected clock; closed after the test."""
    built: list[Service] = []

    def make(clock: Callable[..., object] | None = None, **changes: object) -> Service:
        service = bootstrap.build(settings.with_(**changes), clock=clock or FakeClock())  # type: ignore[arg-type]
        built.append(service)
        return service

    yield make
    for service in built:
        service.close()


@pytest.fixture
def service(make_service: Callable[..., Service], clock: FakeClock) -> Service:
    return make_service(clock)


@pytest.fixture(scope="session")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server process shared by the end-to-end tests of a run."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    process = ServerProcess(database_url, log_path)
    yield process
    process.stop()


@pytest.fixture
def client(server: ServerProcess) -> Client:
    return server.client


@pytest.fixture
def sql(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def own_database(database_url: str) -> Iterator[str]:
    """A database of the test's own (a module may override it, say with a wider scope)."""
    with fresh_database(database_url) as url:
        yield url


@pytest.fixture
def serve_in_process() -> Iterator[Callable[[Service], Client]]:
    """A real gRPC server in this process around a service with an injected clock, reached over
    a real channel: for the end-to-end rules that need time to pass."""
    from license_svc.entrypoints.api.server import Server

    started: list[tuple[Server, Client]] = []

    def serve(service: Service) -> Client:
        server = server_for(service)
        server.start()
        client = Client(f"127.0.0.1:{server.port}")
        started.append((server, client))
        return client

    yield serve
    for server, client in started:
        client.close()
        server.stop(grace=1)


@pytest.fixture
def serve_projected(
    make_service: Callable[..., Service],
    clock: FakeClock,
    serve_in_process: Callable[[Service], Client],
) -> Callable[..., tuple[Client, Service]]:
    """A new service on the test's clock (`changes` to its settings), its projections running,
    served in this process: its client and the service."""

    def serve(**changes: object) -> tuple[Client, Service]:
        service = make_service(clock, **changes)
        bootstrap.start_projections(service)
        return serve_in_process(service), service

    return serve
