"""What the seat book answers (leases, grants, renewals, releases) and what it reads through
(the allowance view, as a Protocol: the capability does not import the projections)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import Identifier

from license_svc.domain.subscription import Entitlement
from license_svc.domain.tiers import Product

Account = tuple[str, str]  # (account_id, product value)


class AllowanceRows(Protocol):
    """The allowance view as leases read it (`projections.allowance.AllowanceView`)."""

    def entitlements_in(
        self, curs: Cursor[DictRow], accounts: list[Account], now: datetime
    ) -> tuple[dict[Account, list[Entitlement]], int]: ...

    def table(self, suffix: str) -> Identifier: ...


@dataclass(frozen=True)
class Lease:
    lease_id: UUID
    account_id: str
    product: Product
    connection_id: str
    holder: str
    ttl_seconds: int
    granted_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> Lease:
        fields = {name: row[name] for name in cls.__dataclass_fields__}
        return cls(**{**fields, "product": Product(row["product"])})


@dataclass(frozen=True)
class Grant:
    lease: Lease
    seats: int
    seats_leased: int  # after this grant
    position: int  # of the grant's event (a renewed retry: 0, nothing was recorded)
    granted: bool  # False: a retried acquire got its open lease back, renewed


class Renewal(NamedTuple):
    """One lease's answer to a heartbeat (a named tuple: a heartbeat makes a hundred of them,
    at a third of a frozen dataclass's cost each)."""

    lease_id: UUID | str  # as the caller named it
    renewed: bool
    over_allowance: bool = False
    expires_at: datetime | None = None

    @property
    def lost(self) -> bool:
        return not self.renewed


@dataclass(frozen=True)
class Release:
    released: bool  # False: it had already ended (released or expired): nothing to do
    position: int = 0
    account_id: str = ""
