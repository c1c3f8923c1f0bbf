"""What a stored event tells a partner: the message types, their bodies and their ids.

A body is `{"id", "type", "timestamp", "data"}` (rules §14); `data` names the key (`key_id`,
`hint`, `tier`, `seats`), the account where there is one, the dates and the store `position`,
and never a code (events hold none). Bodies are made once, when the delivery is recorded, and
sent byte for byte on every try.

A message id is derived from the message type, the store position it comes from and the
endpoint: a retry, a redelivery, and a router that processes the same position again (after a
crash before its commit) all name the same message, so the deliveries table's primary key
makes "recorded twice" impossible and a partner can deduplicate on `webhook-id`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

KEY_ACTIVATED = "key.activated"
KEY_REVOKED = "key.revoked"
KEY_EXPIRED = "key.expired"
BATCH_ISSUED = "batch.issued"
EXPIRING_SOON = "subscription.expiring_soon"
TYPES = (KEY_ACTIVATED, KEY_REVOKED, KEY_EXPIRED, BATCH_ISSUED, EXPIRING_SOON)
_NAMESPACE = uuid.UUID("5b0f6c1e-7d0a-4b8e-9a57-3f1f0e0c9a11")


def message_id(message_type: str, position: int, endpoint_id: str) -> str:
    return "msg_" + uuid.uuid5(_NAMESPACE, f"{message_type}:{position}:{endpoint_id}").hex


def instant(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class KeyFacts:
    """What the router remembers of a key (its `webhook_keys` row)."""

    key_id: str
    reseller_id: str
    product: str
    tier: str
    seats: int
    hint: str
    batch_id: str
    account_id: str | None = None
    period_starts_at: datetime | None = None
    period_ends_at: datetime | None = None
    activated_position: int | None = None
    status: str = "issued"

    def data(self, position: int) -> dict[str, Any]:
        found: dict[str, Any] = {
            "key_id": self.key_id,
            "hint": self.hint,
            "product": self.product,
            "tier": self.tier,
            "seats": self.seats,
            "reseller_id": self.reseller_id,
            "batch_id": self.batch_id,
            "position": position,
        }
        if self.account_id is not None:
            found["account_id"] = self.account_id
            found["period_starts_at"] = instant(self.period_starts_at)
            found["period_ends_at"] = instant(self.period_ends_at)
        return found


@dataclass(frozen=True)
class Message:
    """One message of the log, before it is addressed to endpoints."""

    type: str
    position: int
    reseller_id: str
    timestamp: datetime
    data: dict[str, Any]

    def body(self, endpoint_id: str) -> tuple[str, bytes]:
        """The message id for `endpoint_id` and the body sent to it."""
        mid = message_id(self.type, self.position, endpoint_id)
        document = {
            "id": mid,
            "type": self.type,
            "timestamp": instant(self.timestamp),
            "data": self.data,
        }
        return mid, json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
