"""A store that already holds events with NULs (appended before the API refused them) is projected:
`projections rebuild` replays it, a worker follows it, and the server answers from the views."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from license_svc import bootstrap
from license_svc.domain.key import ActivationKey
from license_svc.domain.tiers import Product, Tier
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from projections.base import REPLACEMENT
from projections.registry import NAMES
from tests.helpers import unique
from tests.support import Client
from tests.views_support import (
    all_live_at_head,
    cli,
    fresh_database,
    server_with_worker,
    settings_for,
    wait_until,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def poisoned(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database whose store holds a NUL in each text field a view keeps, appended directly
    through the library (as the service did before its requests were validated)."""
    with fresh_database(database_url) as url:
        service = bootstrap.build(settings_for(url, tmp_path, LICENSE_SVC_POOL_SIZE="2"))
        try:
            keys = []
            for n in range(3):
                key = ActivationKey.issue(
                    uuid4(), product=Product.INTEGRATIONS, tier=Tier.GROWTH, seats=2,
                    period_months=12, reseller_id="acme", batch_id=f"b\x00{n}",
                    hint=f"INT-••••-••••-\x00{n}",
                )  # fmt: skip
                keys.append(key)
            revoked, activated, fraud = keys
            revoked.revoke(
                reason="fraud\x00oops", revoked_by="reseller:acme", by_ops=False, now=NOW
            )
            activated.activate("acct\x00evil", NOW)
            fraud.activate("acct-2", NOW)
            fraud.revoke(reason="\x00", revoked_by="ops\x00", by_ops=True, now=NOW)
            service.app.save(*keys)
        finally:
            service.close()
        yield url


def test_a_rebuild_replays_a_store_with_nul_bytes_and_the_service_reads_on(
    poisoned: str, tmp_path: Path
) -> None:
    rebuilt = cli(poisoned, "projections", "rebuild", "all")
    assert rebuilt.returncode == 0, rebuilt.stderr
    for name in NAMES:
        assert f"rebuilt {name}: 7 events" in rebuilt.stderr
    with psycopg.connect(poisoned, autocommit=True) as sql:
        reasons = sql.execute(
            "SELECT revoked_reason, revoked_by FROM catalog_g2_keys WHERE status = 'revoked'"
        ).fetchall()
        assert set(reasons) == {
            (f"fraud{REPLACEMENT}oops", "reseller:acme"),
            (REPLACEMENT, f"ops{REPLACEMENT}"),
        }
        accounts = sql.execute("SELECT account_id FROM summary_g2_entitlements").fetchall()
        assert accounts == [(f"acct{REPLACEMENT}evil",)]
    with server_with_worker(poisoned, tmp_path) as client:
        with psycopg.connect(poisoned, autocommit=True) as sql:
            wait_until(lambda: all_live_at_head(sql), "every view at the head")
        listed = client.keys.ListKeys(
            pb.ListKeysRequest(), metadata=Client.as_("ops"), timeout=10
        ).keys
        assert {k.revoked_reason for k in listed} == {"", REPLACEMENT, f"fraud{REPLACEMENT}oops"}
        # New events after the poisoned ones are projected and read back at their position.
        account = unique("acct")
        activation = client.activate(client.issue(1).keys[0].code, account, unique("sess"))
        summary = client.entitlements.GetSubscriptionSummary(
            pb.GetSubscriptionSummaryRequest(
                account_id=account,
                product=pb.PRODUCT_INTEGRATIONS,
                min_position=activation.position,
            ),
            metadata=Client.as_("portal"),
            timeout=10,
        )
        assert summary.active and summary.position >= activation.position
