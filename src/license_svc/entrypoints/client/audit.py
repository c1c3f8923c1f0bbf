"""`license-svc audit history|events|summary`: an auditor's terminal, one JSON object a line."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import grpc

from license_svc.entrypoints.api.gen import licensing_pb2 as pb

from .common import (
    OK,
    Connection,
    Refused,
    as_dict,
    options,
    print_json,
    refusal,
    run,
    table,
    when,
)
from .keys import key_ref
from .reads import account_options, cmd_summary


def cmd_history(conn: Connection, args: argparse.Namespace) -> int:
    answer = conn.call(conn.audit.GetKeyHistory, pb.GetKeyHistoryRequest(**key_ref(args.key)))
    if args.json:
        for event in answer.events:
            print_json(as_dict(event))
        return OK
    table(
        ["POSITION", "VERSION", "RECORDED", "EVENT"],
        [[e.position, e.version, when(e.recorded_at), e.type] for e in answer.events],
    )
    return OK


def cmd_events(conn: Connection, args: argparse.Namespace) -> int:
    """Always JSON lines (for jq or a file). Checkpoints and the caught-up marker only with
    --markers, as {"checkpoint": N} / {"caught_up": N}, so a consumer can save its position."""
    request = pb.StreamEventsRequest(
        after_position=args.after,
        follow=args.follow,
        limit=args.limit,
        event_types=args.type or [],
        account_id=args.account or "",
        reseller_id=args.reseller or "",
        key_id=args.key or "",
    )
    stream = conn.audit.StreamEvents(
        request, metadata=conn.metadata, timeout=None if args.follow else args.timeout * 10
    )
    try:
        for item in stream:
            kind = item.WhichOneof("item")
            if kind == "event":
                print_json(as_dict(item.event))
            elif args.markers and kind in ("checkpoint", "caught_up"):
                print_json({kind: getattr(item, kind).position})
            sys.stdout.flush()
    except grpc.RpcError as error:
        raise Refused(refusal(error, conn.target)) from None
    except BrokenPipeError:  # `| head -3`: the reader has what it wanted
        stream.cancel()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
    return OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = options()
    audit = commands.add_parser("audit", help="client: key history, the event stream, as-of")
    group = audit.add_subparsers(dest="audit_command", required=True)

    def leaf(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = group.add_parser(name, parents=[common], help=help)
        parser.set_defaults(func=lambda args: run(args, handler))
        return parser

    leaf("history", cmd_history, "a key's events").add_argument("key", metavar="CODE|KEY_ID")
    events = leaf("events", cmd_events, "the store's events, one JSON object a line")
    events.add_argument("--after", type=int, default=0, help="after this position (0)")
    events.add_argument("--follow", action="store_true", help="keep streaming new events")
    events.add_argument("--type", action="append", metavar="T", help="event type (repeatable)")
    events.add_argument("--account")
    events.add_argument("--reseller")
    events.add_argument("--key", metavar="KEY_ID")
    events.add_argument("--limit", type=int, default=0, help="events at most (0 = all)")
    events.add_argument("--markers", action="store_true", help="also print checkpoints")
    account_options(leaf("summary", cmd_summary, "an account's summary (at --as-of)"))
