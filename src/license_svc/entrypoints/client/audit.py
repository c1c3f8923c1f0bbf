"""`license-svc audit history|events|summary`: an auditor's terminal, one JSON object a line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import grpc

from license_svc.entrypoints.api.gen import licensing_pb2 as pb

from . import common
from .keys import key_ref
from .reads import account_options, cmd_summary
from .refusals import refusal_of
from .streams import StopOnSignal

# What a person reads in an event, in this order (the rest stays in --json): who, which
# account, why, and the dates that matter.
DETAIL_FIELDS = (
    "account_id", "reseller_id", "revoked_by", "reason", "tier", "seats", "period_months",
    "subscription_id", "kind", "period_starts_at", "period_ends_at", "expired_at",
    "cancel_at_period_end", "batch_id",
)  # fmt: skip


def event_dict(event: pb.StoredEvent) -> dict[str, Any]:
    """An event as JSON, its payload from `payload_json` (exact: integers stay integers); from
    a server without it, the Struct's integral numbers are made integers again."""
    value = common.as_dict(event)
    text = value.pop("payload_json", "")
    value["payload"] = json.loads(text) if text else integral(value.get("payload", {}))
    return value


def integral(value: Any) -> Any:
    """A Struct's numbers are doubles: 3.0 → 3 (every payload number is an integer)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def detail(payload: dict[str, Any]) -> str:
    parts = []
    for name in DETAIL_FIELDS:
        if payload.get(name) not in (None, ""):
            found = payload[name]
            shown = common.yes_no(found) if isinstance(found, bool) else str(found)
            parts.append(f"{name.removesuffix('_id')}={shown}")
    return " ".join(parts) or "-"


def cmd_history(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(conn.audit.GetKeyHistory, pb.GetKeyHistoryRequest(**key_ref(args.key)))
    events = [event_dict(e) for e in answer.events]
    if args.json:
        for event in events:
            common.print_json(event)
        return common.OK
    common.table(
        ["POSITION", "VERSION", "RECORDED", "EVENT", "DETAIL"],
        [[e.position, e.version, common.when(e.recorded_at), e.type, detail(d["payload"])]
         for e, d in zip(answer.events, events, strict=True)],
    )  # fmt: skip
    return common.OK


def cmd_events(conn: common.Connection, args: argparse.Namespace) -> int:
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
    with StopOnSignal(stream) as stop:  # Ctrl-C cancels the stream (see streams.py)
        try:
            for item in stream:
                kind = item.WhichOneof("item")
                if kind == "event":
                    common.print_json(event_dict(item.event))
                elif args.markers and kind in ("checkpoint", "caught_up"):
                    common.print_json({kind: getattr(item, kind).position})
                sys.stdout.flush()
        except grpc.RpcError as error:
            if stop.stopped:
                return common.INTERRUPTED
            raise common.Refused(refusal_of(error, conn.target)) from None
        except BrokenPipeError:  # `| head -3`: the reader has what it wanted
            stream.cancel()
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
    return common.INTERRUPTED if stop.stopped else common.OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = commands.add_parser("audit", help="client: key history, the event stream, as-of")
    group = audit.add_subparsers(dest="audit_command", required=True)

    history = common.command(
        group, "history", cmd_history, "a key's events, with who, why, which account, dates"
    )
    history.add_argument("key", metavar="CODE|KEY_ID", help="the key's code or its key id")
    events = common.command(
        group, "events", cmd_events, "the store's events, one JSON object a line"
    )
    events.add_argument("--after", type=int, default=0, help="after this position (0)")
    events.add_argument("--follow", action="store_true", help="keep streaming new events")
    events.add_argument("--type", action="append", metavar="T", help="event type (repeatable)")
    events.add_argument("--account", help="only this account's events")
    events.add_argument("--reseller", help="only this reseller's keys' events")
    events.add_argument("--key", metavar="KEY_ID", help="only this key's events")
    events.add_argument("--limit", type=int, default=0, help="events at most (0 = all)")
    events.add_argument("--markers", action="store_true", help="also print checkpoints")
    account_options(
        common.command(group, "summary", cmd_summary, "an account's summary (at --as-of)")
    )
