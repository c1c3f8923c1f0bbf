"""The domain series of /metrics against real Postgres: the first scrape starts the key counters
from the catalog's count tables (no scan of the store) and they equal the store's counts; a
part whose read times out keeps its last values while the other parts stay fresh, and is read
again once the database answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg.sql import SQL

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.entrypoints.api import domain_metrics
from license_svc.entrypoints.api.domain_metrics import DomainCollector
from license_svc.keys.app import IssueKeys
from projections.catalog import CatalogView
from tests.helpers import EVENTS_TABLE, unique
from tests.views_support import service_on_fresh_database


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    with service_on_fresh_database(database_url, tmp_path) as built:
        yield built


def scrape(collector: DomainCollector) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    return {
        sample.name + (f"{{{sample.labels['view']}}}" if sample.labels else ""): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def issue_and_activate(service: Service, count: int) -> int:
    batch = service.app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.SCALE, 1, 12, count, unique("req"))
    )
    last = 0
    for key in batch.keys[: count // 2]:
        last = service.app.activate(key.key_id, unique("acct")).position
    return last


def store_scans(sql: psycopg.Connection) -> int:
    row = sql.execute(
        "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = %s", (EVENTS_TABLE,)
    ).fetchone()
    return int(row[0]) if row else 0


def test_the_first_scrape_counts_keys_from_the_catalog_without_scanning_the_store(
    service: Service,
) -> None:
    bootstrap.start_projections(service)
    last = issue_and_activate(service, 40)
    service.views.read(CatalogView, last, 60, lambda view: (None, view.position()))
    for task in service.background:  # the worker reads the log too: only the scrape now
        task.stop()
    with psycopg.connect(service.settings.database_url, autocommit=True) as sql:
        sql.execute(f"ANALYZE {EVENTS_TABLE}")  # the planner knows the table as a big one would
        sql.execute("SELECT pg_stat_force_next_flush()")
        before = store_scans(sql)
        seen = scrape(DomainCollector(service.settings, service.app, service.views, service.clock))
        sql.execute("SELECT pg_stat_force_next_flush()")
        after = store_scans(sql)
    assert (seen["license_svc_keys_issued_total"], seen["license_svc_keys_activated_total"]) == (
        40,
        20,
    )
    assert after - before == 0


def test_a_part_that_times_out_keeps_its_last_values_and_comes_back_when_the_database_answers(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(domain_metrics, "READ_TIMEOUT_SECONDS", 0.3)
    issue_and_activate(service, 10)
    collector = DomainCollector(service.settings, service.app, service.views, service.clock)
    first = scrape(collector)
    assert first["license_svc_keys_issued_total"] == 10
    with psycopg.connect(service.settings.database_url) as holder:
        holder.execute(f"LOCK TABLE {EVENTS_TABLE} IN ACCESS EXCLUSIVE MODE")  # reads time out
        during = scrape(collector)
        holder.rollback()
    issue_and_activate(service, 4)
    after = scrape(collector)

    assert during["license_svc_keys_issued_total"] == 10  # kept, not dropped
    assert during["license_svc_store_position"] == first["license_svc_store_position"]
    assert "license_svc_blocked_sessions" in during  # the other parts were read fresh
    assert after["license_svc_keys_issued_total"] == 14  # read again, nothing lost
    assert after["license_svc_store_position"] > first["license_svc_store_position"]


class Recording(domain_metrics.MetricsConnection):
    """The scrape's connection, keeping each statement it ran."""

    def __init__(self, conninfo: str) -> None:
        super().__init__(conninfo)
        self.statements: list[tuple[Any, Any]] = []

    def execute(self, statement: Any, params: Any = None) -> list[tuple[Any, ...]]:
        self.statements.append((statement, params))
        return super().execute(statement, params)


def test_no_statement_of_a_scrape_needs_a_sequential_scan_of_the_store(service: Service) -> None:
    # Every statement of a first and a later scrape, planned with sequential scans priced out:
    # each reads the store through an index (its head, the events after a position), so a
    # scrape of a store of any size reads only what the views have not processed yet.
    bootstrap.start_projections(service)
    last = issue_and_activate(service, 20)
    service.views.read(CatalogView, last, 60, lambda view: (None, view.position()))
    collector = DomainCollector(service.settings, service.app, service.views, service.clock)
    recording = collector._db = Recording(service.settings.conninfo())
    scrape(collector)
    issue_and_activate(service, 2)
    scrape(collector)
    assert recording.statements
    with psycopg.connect(service.settings.database_url) as sql:
        sql.execute("SET enable_seqscan = off")
        for statement, params in recording.statements:
            query = SQL("EXPLAIN ") + (SQL(statement) if isinstance(statement, str) else statement)
            plan = "\n".join(str(row[0]) for row in sql.execute(query, params).fetchall())
            assert f"Seq Scan on {EVENTS_TABLE}" not in plan, plan
