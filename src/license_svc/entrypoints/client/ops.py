"""`license-svc status`, `watch ACCOUNT`, and `attempts lift` over gRPC: what ops and
integrations follow, and support's lift of a failed-attempt block."""

from __future__ import annotations

import argparse
import sys

import grpc

from license_svc.entrypoints.api.gen import licensing_pb2 as pb

from . import common
from .refusals import refusal_of
from .streams import StopOnSignal


def cmd_status(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(conn.ops.GetProjectionStatus, pb.GetProjectionStatusRequest())
    if args.json:
        common.print_json(common.as_dict(answer))
        return common.OK
    common.table(
        ["VIEW", "POSITION", "HEAD", "LAG"],
        [[p.name, p.position, p.head_position, p.lag] for p in answer.projections],
    )
    return common.OK


def allowance_line(a: pb.SeatAllowance) -> str:
    return (
        f"{common.when(a.as_of) if a.HasField('as_of') else '-'} {a.account_id}:"
        f" active {common.yes_no(a.active)}, tier {common.enum_name(pb.Tier, a.tier)},"
        f" {a.seats} seats,"
        f" {a.remaining} remaining, can connect {common.yes_no(a.can_create_connection)},"
        f" valid until {common.when(a.valid_until)} (position {a.position})"
    )


def cmd_watch(conn: common.Connection, args: argparse.Namespace) -> int:
    """One line per change of the account's allowance (the first is the current one), until
    Ctrl-C; --json: one object a line."""
    request = pb.WatchSeatAllowanceRequest(
        account_id=args.account,
        product=common.PRODUCTS[args.product],
        connections_in_use=args.in_use,
    )
    stream = conn.entitlements.WatchSeatAllowance(request, metadata=conn.metadata, timeout=None)
    with StopOnSignal(stream) as stop:
        try:
            for item in stream:
                if item.WhichOneof("item") != "allowance":
                    continue
                if args.json:
                    common.print_json(common.as_dict(item.allowance))
                else:
                    print(allowance_line(item.allowance))
                sys.stdout.flush()
        except grpc.RpcError as error:
            if stop.stopped:
                return common.INTERRUPTED
            raise common.Refused(refusal_of(error, conn.target)) from None
    return common.INTERRUPTED if stop.stopped else common.OK


def cmd_lift(conn: common.Connection, args: argparse.Namespace) -> int:
    """LiftAttemptBlock: the server records who (the token's caller) and why."""
    answer = conn.call(
        conn.ops.LiftAttemptBlock,
        pb.LiftAttemptBlockRequest(
            account_id=args.account, session_id=args.session or "", reason=args.reason
        ),
    )
    if args.json:
        common.print_json(common.as_dict(answer) | {"lifted": answer.lifted})
        return common.OK
    scope = f"session {args.session} of account {args.account}" if args.session else args.account
    print(f"lifted the block of {scope}: {answer.lifted} failed attempts no longer count")
    return common.OK


def lift_over_grpc(args: argparse.Namespace) -> int:
    return common.run(args, cmd_lift)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    common.command(
        commands,
        "status",
        cmd_status,
        "client: the views' positions and lag behind the store (ops)",
    )
    watch = common.command(
        commands, "watch", cmd_watch, "client: an account's seat allowance, a line per change"
    )
    watch.add_argument("account", metavar="ACCOUNT", help="the customer's account id")
    common.product_option(watch)
    watch.add_argument("--in-use", type=int, default=0, help="connections in use (0)")
