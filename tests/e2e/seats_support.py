"""Seat-lease calls over a real channel, shared by the seat tests."""

from __future__ import annotations

import uuid
from datetime import datetime

import psycopg

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc
from tests.helpers import unique
from tests.support import Client

INT = pb.PRODUCT_INTEGRATIONS


def seats(client: Client) -> pb_grpc.SeatServiceStub:
    return pb_grpc.SeatServiceStub(client.channel)


def account_with_seats(client: Client, *counts: int) -> tuple[str, list[str]]:
    """A new account with one activated key per count, once the allowance view shows them."""
    account, keys, position = unique("acct"), [], 0
    for count in counts:
        issued = client.issue(seats=count)
        done = client.activate(issued.keys[0].code, account)
        keys.append(done.entitlement.key_id)
        position = done.position
    allowance(client, account, position)
    return account, keys


def allowance(client: Client, account: str, min_position: int = 0) -> pb.SeatAllowance:
    answer: pb.SeatAllowance = client.entitlements.GetSeatAllowance(
        pb.GetSeatAllowanceRequest(account_id=account, product=INT, min_position=min_position),
        metadata=client.as_("integrations"),
        timeout=30,
    )
    return answer


def acquire_request(
    account: str, connection: str | None = None, holder: str = "holder-1", ttl: int = 0
) -> pb.AcquireSeatRequest:
    return pb.AcquireSeatRequest(
        account_id=account,
        product=INT,
        connection_id=connection or f"conn-{uuid.uuid4().hex[:10]}",
        holder=holder,
        ttl_seconds=ttl,
    )


def acquire(client: Client, account: str, **fields: object) -> pb.AcquireSeatResponse:
    answer: pb.AcquireSeatResponse = seats(client).AcquireSeat(
        acquire_request(account, **fields),  # type: ignore[arg-type]
        metadata=client.as_("integrations"),
        timeout=30,
    )
    return answer


def release(client: Client, lease_id: str) -> pb.ReleaseSeatResponse:
    answer: pb.ReleaseSeatResponse = seats(client).ReleaseSeat(
        pb.ReleaseSeatRequest(lease_id=lease_id), metadata=client.as_("integrations"), timeout=30
    )
    return answer


def renew(client: Client, lease_ids: list[str], holder: str = "holder-1") -> pb.RenewSeatsResponse:
    answer: pb.RenewSeatsResponse = seats(client).RenewSeats(
        pb.RenewSeatsRequest(holder=holder, lease_ids=lease_ids),
        metadata=client.as_("integrations"),
        timeout=30,
    )
    return answer


def listed(client: Client, account: str, role: str = "integrations") -> list[pb.SeatLease]:
    answer: pb.ListSeatLeasesResponse = seats(client).ListSeatLeases(
        pb.ListSeatLeasesRequest(account_id=account, product=INT),
        metadata=client.as_(role),
        timeout=30,
    )
    return list(answer.leases)


def most_live_at_once(sql: psycopg.Connection, account: str) -> int:
    """The most leases of `account` live at one instant, from the lease rows' spans (granted to
    ended, or to expires_at while open): the limit holds at every instant, not only at the end."""
    rows = sql.execute(
        "SELECT granted_at, coalesce(ended_at, expires_at) FROM seat_leases WHERE account_id = %s",
        (account,),
    ).fetchall()
    edges: list[tuple[datetime, int]] = []
    for start, end in rows:
        edges += [(start, 1), (end, -1)]
    live = most = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end frees before a start
        live += step
        most = max(most, live)
    return most
