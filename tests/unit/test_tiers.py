"""The tier catalog of rules §5: one place in the code, the values of the spec's table."""

from __future__ import annotations

import pytest

from license_svc.domain.tiers import CATALOG, Product, Tier, has_catalog, highest, limits

# Written from the rules' table, independently of CATALOG.
SPEC_TIERS = {
    Tier.STARTER: ("Starter", 300, "Basic"),
    Tier.GROWTH: ("Growth", 3_000, "Near real-time + auto retry"),
    Tier.SCALE: ("Scale", 10_000, "Real-time + multi-location"),
}


@pytest.mark.parametrize("tier", list(Tier))
def test_each_integrations_tier_has_the_limits_of_the_spec(tier: Tier) -> None:
    name, invoices, sync = SPEC_TIERS[tier]
    found = limits(Product.INTEGRATIONS, tier)
    assert (found.tier, found.name, found.invoices_per_month, found.sync) == (
        tier,
        name,
        invoices,
        sync,
    )


def test_the_catalog_holds_exactly_the_three_integrations_tiers() -> None:
    assert set(CATALOG) == {Product.INTEGRATIONS}
    assert set(CATALOG[Product.INTEGRATIONS]) == set(SPEC_TIERS)


def test_only_integrations_has_a_catalog_so_far() -> None:
    assert has_catalog(Product.INTEGRATIONS)
    assert not has_catalog(Product.CLOUD_POS)


def test_the_highest_tier_wins_when_keys_stack() -> None:
    assert highest([Tier.STARTER, Tier.SCALE, Tier.GROWTH]) is Tier.SCALE
    assert highest([Tier.GROWTH, Tier.STARTER]) is Tier.GROWTH
    assert highest([Tier.STARTER]) is Tier.STARTER
    assert highest([]) is None


def test_products_name_themselves_and_their_key_prefix() -> None:
    assert (Product.INTEGRATIONS.display, Product.INTEGRATIONS.prefix) == ("Integrations", "INT")
    assert (Product.CLOUD_POS.display, Product.CLOUD_POS.prefix) == ("Cloud POS", "POS")
