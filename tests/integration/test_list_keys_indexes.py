"""Every ListKeys filter has an index on the key catalog (real Postgres): with sequential scans
priced out, the plan of each filtered page reads an index on that filter, never the table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from psycopg.sql import SQL

from license_svc.bootstrap import Service
from license_svc.domain.key import KeyStatus
from projections.catalog import CatalogView, KeyFilter


@pytest.mark.parametrize(
    ("where", "column"),
    [
        (KeyFilter(batch_id="b-1"), "batch_id"),
        (KeyFilter(status=KeyStatus.REVOKED), "status"),
        (KeyFilter(status=KeyStatus.ISSUED), "status"),
        (KeyFilter(reseller_id="acme", status=KeyStatus.REVOKED), "reseller_id"),
        (KeyFilter(reseller_id="acme"), "reseller_id"),
    ],
)
def test_each_list_keys_filter_is_served_by_an_index_on_that_filter(
    service: Service, where: KeyFilter, column: str
) -> None:
    catalog = service.views.catalog
    assert isinstance(catalog, CatalogView)
    catalog.create_table()  # a generation made before the indexes gets them
    statement, params = catalog.list_statement(where, datetime.now(UTC), 0, 10)
    with catalog.datastore.transaction(commit=False) as curs:
        curs.execute("SET LOCAL enable_seqscan = off")
        curs.execute(SQL("EXPLAIN ") + statement, params)
        plan = "\n".join(str(row["QUERY PLAN"]) for row in curs.fetchall())
    assert "Seq Scan" not in plan, plan
    assert "Index Cond" in plan and column in plan.split("Index Cond", 1)[1], plan
