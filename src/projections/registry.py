"""The views by name: what `license-svc project`, `projections rebuild NAME` and readers know."""

from __future__ import annotations

from typing import Any

from .allowance import AllowanceProjection
from .base import BatchProjection, View
from .catalog import CatalogProjection
from .summary import SummaryProjection

PROJECTIONS: dict[str, type[BatchProjection[Any]]] = {
    "summary": SummaryProjection,
    "allowance": AllowanceProjection,
    "catalog": CatalogProjection,
}
NAMES = list(PROJECTIONS)


def view_class(name: str) -> type[View]:
    return PROJECTIONS[name].view_class
