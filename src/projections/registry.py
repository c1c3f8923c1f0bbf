"""The views by name: what `license-svc project`, `projections rebuild NAME` and readers know."""

from __future__ import annotations

from .allowance import AllowanceView
from .base import View
from .catalog import CatalogView
from .summary import SummaryView

VIEWS: dict[str, type[View]] = {
    "summary": SummaryView,
    "allowance": AllowanceView,
    "catalog": CatalogView,
}
NAMES = list(VIEWS)


def view_class(name: str) -> type[View]:
    return VIEWS[name]
