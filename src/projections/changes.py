"""What a view's batch changed, said two ways: the notice servers hear at commit (which accounts
changed, up to which position) and the rows of the allowance's change log (one per event that
changed an account's entitlements, at that event's position: the change feed's durable record).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# NOTIFY refuses a payload of 8000 bytes or more; past this a notice names no accounts and
# means "anything may have changed up to its position".
NOTICE_LIMIT = 7900
EVERYTHING = "*"


@dataclass(frozen=True)
class Change:
    """An event at `position` changed the entitlements of (account_id, product)."""

    position: int
    account_id: str
    product: str


@dataclass(frozen=True)
class Notice:
    """A view's batch as servers hear it: `{view}_g{n}:{first}:{last}[:{accounts}]`, where
    accounts is a JSON list of the account ids whose answers changed, or `*` (everything may
    have changed: too many to name). Without the fourth part the view does not say."""

    view: str
    first: int
    last: int
    accounts: frozenset[str] | None  # None: every account may have changed

    def encode(self) -> str:
        head = f"{self.view}:{self.first}:{self.last}"
        if self.accounts is None:
            return f"{head}:{EVERYTHING}"
        named = f"{head}:{json.dumps(sorted(self.accounts))}"  # ASCII: bytes == characters
        return named if len(named) < NOTICE_LIMIT else f"{head}:{EVERYTHING}"

    @classmethod
    def decode(cls, payload: str) -> Notice:
        """Raises ValueError for a payload that is not a view's batch notice."""
        parts = payload.split(":", 3)
        if len(parts) < 3:
            raise ValueError(payload)
        first, last = int(parts[1]), int(parts[2])
        if len(parts) == 3 or parts[3] == EVERYTHING:
            return cls(parts[0], first, last, None)
        accounts = json.loads(parts[3])
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            raise ValueError(payload)
        return cls(parts[0], first, last, frozenset(accounts))
