"""`license-svc seats acquire|renew|release|list`: seat leases (rules §12) by hand, for ops and
for trying a holder's heartbeat out."""

from __future__ import annotations

import argparse
import socket
from typing import Any

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc

from . import common

LEASE_HEADERS = ["LEASE ID", "CONNECTION", "HOLDER", "GRANTED", "EXPIRES"]


def _stub(conn: common.Connection) -> pb_grpc.SeatServiceStub:
    return pb_grpc.SeatServiceStub(conn.channel)


def _rows(leases: Any) -> list[list[object]]:
    return [
        [
            x.lease_id,
            x.connection_id,
            x.holder,
            common.when(x.granted_at),
            common.when(x.expires_at),
        ]
        for x in leases
    ]


def cmd_acquire(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(
        _stub(conn).AcquireSeat,
        pb.AcquireSeatRequest(
            account_id=args.account,
            product=common.PRODUCTS[args.product],
            connection_id=args.connection,
            holder=args.holder,
            ttl_seconds=args.ttl,
        ),
    )
    if args.json:
        common.print_json(common.as_dict(answer))
        return common.OK
    common.table(LEASE_HEADERS, _rows([answer.lease]))
    print(f"{answer.seats_leased} of {answer.seats} seats leased (position {answer.position})")
    return common.OK


def cmd_renew(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(
        _stub(conn).RenewSeats, pb.RenewSeatsRequest(holder=args.holder, lease_ids=args.lease)
    )
    if args.json:
        for renewal in answer.leases:
            common.print_json(common.as_dict(renewal))
        return common.OK
    common.table(
        ["LEASE ID", "OUTCOME", "EXPIRES"],
        [
            [r.lease_id, _outcome(r), common.when(r.expires_at) if r.renewed else "-"]
            for r in answer.leases
        ],
    )
    return common.OK


def _outcome(renewal: pb.LeaseRenewal) -> str:
    if renewal.lost:
        return "lost (acquire again)"
    return "over allowance (close it)" if renewal.over_allowance else "renewed"


def cmd_release(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(_stub(conn).ReleaseSeat, pb.ReleaseSeatRequest(lease_id=args.lease))
    if args.json:
        common.print_json(common.as_dict(answer))
    else:
        print("released" if answer.released else "already released or expired")
    return common.OK


def cmd_list(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(
        _stub(conn).ListSeatLeases,
        pb.ListSeatLeasesRequest(account_id=args.account, product=common.PRODUCTS[args.product]),
    )
    if args.json:
        for lease in answer.leases:
            common.print_json(common.as_dict(lease))
    else:
        common.table(LEASE_HEADERS, _rows(answer.leases))
    return common.OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    seats = commands.add_parser("seats", help="client: acquire, renew, release and list leases")
    group = seats.add_subparsers(dest="seats_command", required=True)
    acquire = common.command(group, "acquire", cmd_acquire, "lease a seat for a connection")
    acquire.add_argument("account", metavar="ACCOUNT", help="the customer's account id")
    acquire.add_argument("--connection", required=True, help="the connection's id")
    acquire.add_argument("--holder", default=socket.gethostname(), help="(this host's name)")
    acquire.add_argument("--ttl", type=int, default=0, help="seconds, 10-3600 (0: the default)")
    common.product_option(acquire)
    renew = common.command(group, "renew", cmd_renew, "renew leases (the heartbeat)")
    renew.add_argument(
        "lease", metavar="LEASE_ID", nargs="+", help="the leases to renew (up to 1,000)"
    )
    renew.add_argument("--holder", default=socket.gethostname(), help="(this host's name)")
    common.command(group, "release", cmd_release, "free a lease's seat").add_argument(
        "lease", metavar="LEASE_ID", help="the lease AcquireSeat answered"
    )
    listing = common.command(group, "list", cmd_list, "an account's live leases, oldest first")
    listing.add_argument("account", metavar="ACCOUNT", help="the customer's account id")
    common.product_option(listing)
