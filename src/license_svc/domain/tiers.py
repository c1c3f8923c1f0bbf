"""The tier catalog (rules §5): the one place tier limits live; the API returns it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Product(str, Enum):
    INTEGRATIONS = "integrations"
    CLOUD_POS = "cloud_pos"

    @property
    def display(self) -> str:
        return {"integrations": "Integrations", "cloud_pos": "Cloud POS"}[self.value]

    @property
    def prefix(self) -> str:
        return {"integrations": "INT", "cloud_pos": "POS"}[self.value]


class Tier(str, Enum):
    STARTER = "starter"
    GROWTH = "growth"
    SCALE = "scale"


@dataclass(frozen=True)
class TierLimits:
    tier: Tier
    name: str
    rank: int  # higher rank wins when keys stack
    invoices_per_month: int
    sync: str


CATALOG: dict[Product, dict[Tier, TierLimits]] = {
    Product.INTEGRATIONS: {
        Tier.STARTER: TierLimits(Tier.STARTER, "Starter", 1, 300, "Basic"),
        Tier.GROWTH: TierLimits(Tier.GROWTH, "Growth", 2, 3_000, "Near real-time + auto retry"),
        Tier.SCALE: TierLimits(Tier.SCALE, "Scale", 3, 10_000, "Real-time + multi-location"),
    },
}


def limits(product: Product, tier: Tier) -> TierLimits:
    return CATALOG[product][tier]


def has_catalog(product: Product) -> bool:
    return product in CATALOG


def highest(tiers: list[Tier], product: Product = Product.INTEGRATIONS) -> Tier | None:
    ranked = sorted(tiers, key=lambda t: CATALOG[product][t].rank)
    return ranked[-1] if ranked else None
