"""Each view batch is fenced on the position it was read from, against real Postgres: a stale
runner (its worker's lock session died while it still wrote) and its successor both read from
the same position; whichever commits second is refused, so no event is counted twice and the
count tables equal a rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from projections.base import APP_NAME
from projections.catalog import CatalogView
from projections.workers.viewset import ViewSet
from tests.helpers import unique
from tests.views_support import differences, service_on_fresh_database

Item = tuple[Any, Tracking]


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    with service_on_fresh_database(database_url, tmp_path) as built:
        yield built


def store_items(service: Service) -> list[Item]:
    batch = service.app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.SCALE, 1, 12, 300, unique("req"))
    )
    for key in batch.keys[:150]:
        service.app.activate(key.key_id, unique("acct"))
    stored = service.app.recorder.select_notifications(start=1, limit=10_000)
    return [(service.app.mapper.to_domain_event(n), Tracking(APP_NAME, n.id)) for n in stored]


def catalog(service: Service, generation: int) -> ViewSet:
    view = CatalogView.at(service.datastore, generation)
    view.create_table()
    return ViewSet([view])


def test_a_stale_runners_overlapping_batch_cannot_commit_after_its_successors(
    service: Service,
) -> None:
    items = store_items(service)  # 300 issued, then 150 activations
    catalog(service, 1).record(items[:300])
    stale, successor = catalog(service, 1), catalog(service, 1)  # both read position 300
    successor.record(items[300:380])
    with pytest.raises(IntegrityError):
        stale.record(items[300:420])  # overlaps the successor's 80 activations
    catalog(service, 1).record(items[380:])
    catalog(service, 2).record(items)  # the rebuild: every event once

    with psycopg.connect(service.settings.database_url, autocommit=True) as sql:
        assert differences(sql, "catalog", 1, 2) == {}


def test_a_successors_overlapping_batch_cannot_commit_after_the_stale_runners(
    service: Service,
) -> None:
    items = store_items(service)
    catalog(service, 1).record(items[:300])
    stale, successor = catalog(service, 1), catalog(service, 1)
    stale.record(items[300:420])
    with pytest.raises(IntegrityError):
        successor.record(items[300:380])  # the library's rule refused this one already
    catalog(service, 1).record(items[420:])  # the successor restarted: from the row's position
    catalog(service, 2).record(items)

    with psycopg.connect(service.settings.database_url, autocommit=True) as sql:
        assert differences(sql, "catalog", 1, 2) == {}
