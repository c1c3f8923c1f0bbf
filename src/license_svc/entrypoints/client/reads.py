"""`license-svc allowance`, `summary`, `stats`, `expiring`: what an account has, what ops count."""

from __future__ import annotations

import argparse
from typing import Any

from license_svc.entrypoints.api.gen import licensing_pb2 as pb

from . import common

ENTITLEMENT_HEADERS = ["KEY ID", "HINT", "SOURCE", "TIER", "SEATS", "STARTS", "ENDS", "RESELLER"]


def entitlement_rows(entitlements: Any) -> list[list[object]]:
    return [
        [e.key_id, e.hint, common.enum_name(pb.EntitlementSource, e.source),
         common.enum_name(pb.Tier, e.tier), e.seats, common.when(e.period_starts_at),
         common.when(e.period_ends_at), e.reseller_id or "-"]
        for e in entitlements
    ]  # fmt: skip


def summary_request(args: argparse.Namespace) -> pb.GetSubscriptionSummaryRequest:
    request = pb.GetSubscriptionSummaryRequest(
        account_id=args.account,
        product=common.PRODUCTS[args.product],
        min_position=args.min_position,
    )
    if args.as_of:
        request.as_of.CopyFrom(common.timestamp(args.as_of, "--as-of"))
    return request


def print_summary(answer: pb.SubscriptionSummary, args: argparse.Namespace) -> None:
    if args.json:
        common.print_json(common.as_dict(answer))
        return
    at = f" as of {common.when(answer.as_of)}" if answer.HasField("as_of") else ""
    state = "active" if answer.active else "inactive"
    print(f"{answer.account_id}: {state}, tier {common.enum_name(pb.Tier, answer.tier)},"
          f" {answer.seats} seats, {answer.invoices_per_month} invoices/month"
          f" (position {answer.position}{at})")  # fmt: skip
    if answer.entitlements:
        common.table(ENTITLEMENT_HEADERS, entitlement_rows(answer.entitlements))


def cmd_summary(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(conn.entitlements.GetSubscriptionSummary, summary_request(args))
    name_resellers(conn, answer.entitlements)
    print_summary(answer, args)
    return common.OK


def name_resellers(conn: common.Connection, entitlements: Any) -> None:
    """The summary's view does not keep who sold a key: read it from the key (GetKey), for the
    callers that may (auditors, ops); a plan bought online has no reseller."""
    for entitlement in entitlements:
        if entitlement.reseller_id or entitlement.source == pb.ENTITLEMENT_SOURCE_PLAN:
            continue
        try:
            key = conn.call(conn.keys.GetKey, pb.GetKeyRequest(key_id=entitlement.key_id))
        except common.Refused:  # the portal and integrations may not read keys: "-" stays
            return
        entitlement.reseller_id = key.key.reseller_id


def cmd_allowance(conn: common.Connection, args: argparse.Namespace) -> int:
    request = pb.GetSeatAllowanceRequest(
        account_id=args.account,
        product=common.PRODUCTS[args.product],
        connections_in_use=args.in_use,
        min_position=args.min_position,
    )
    if args.as_of:
        request.as_of.CopyFrom(common.timestamp(args.as_of, "--as-of"))
    a = conn.call(conn.entitlements.GetSeatAllowance, request)
    if args.json:
        common.print_json(common.as_dict(a))
        return common.OK
    common.table(
        ["ACCOUNT", "ACTIVE", "TIER", "SEATS", "IN USE", "REMAINING", "CAN CONNECT", "VALID UNTIL"],
        [[a.account_id, a.active, common.enum_name(pb.Tier, a.tier), a.seats, a.connections_in_use,
          a.remaining, a.can_create_connection, common.when(a.valid_until)]],
    )  # fmt: skip
    return common.OK


def cmd_stats(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(
        conn.ops.GetKeyStats,
        pb.GetKeyStatsRequest(
            reseller_id=args.reseller or "",
            product=common.PRODUCTS[args.product] if args.product else pb.PRODUCT_UNSPECIFIED,
            from_date=args.from_date or "",
            to_date=args.to_date or "",
        ),
    )
    if args.json:
        common.print_json(common.as_dict(answer))
        return common.OK
    common.table(
        ["RESELLER", "TIER", "STATUS", "KEYS"],
        [[c.reseller_id, common.enum_name(pb.Tier, c.tier),
          common.enum_name(pb.KeyStatus, c.status), c.count]
         for c in answer.counts],
    )  # fmt: skip
    days = [d for d in answer.activations_per_day if d.count]
    if days:
        print()
        common.table(["DAY", "ACTIVATIONS"], [[d.date, d.count] for d in days])
    return common.OK


def cmd_expiring(conn: common.Connection, args: argparse.Namespace) -> int:
    request = pb.ListExpiringSubscriptionsRequest(reseller_id=args.reseller or "")
    if args.before:
        request.before.CopyFrom(common.timestamp(args.before, "--before"))
    found: list[pb.Entitlement] = common.collect(
        conn, conn.ops.ListExpiringSubscriptions, request, args.limit, "entitlements"
    )
    if args.json:
        for entitlement in found:
            common.print_json(common.as_dict(entitlement))
    else:
        rows = zip(found, entitlement_rows(found), strict=True)
        common.table(["ACCOUNT", *ENTITLEMENT_HEADERS], [[e.account_id, *row] for e, row in rows])
        common.more_hint(len(found), bool(request.page_token) and len(found) >= args.limit)
    return common.OK


def account_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("account", metavar="ACCOUNT", help="the customer's account id")
    common.product_option(parser)
    parser.add_argument("--as-of", help="point in time, e.g. 2026-03-03T14:03:00Z")
    parser.add_argument("--min-position", type=int, default=0, help="wait for this position")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    allowance = common.command(
        commands, "allowance", cmd_allowance, "client: an account's seat allowance"
    )
    account_options(allowance)
    allowance.add_argument("--in-use", type=int, default=0, help="connections in use (0)")
    account_options(
        common.command(
            commands, "summary", cmd_summary, "client: an account's subscription summary"
        )
    )
    stats = common.command(
        commands, "stats", cmd_stats, "client: key counts and activations per day (ops, reseller)"
    )
    stats.add_argument("--reseller", help="one reseller (a reseller's token: its own)")
    common.choice_option(
        stats, "--product", common.PRODUCTS, "product_", help="one product (default: every product)"
    )
    stats.add_argument("--from", dest="from_date", metavar="YYYY-MM-DD",
                       help="activations per day from this UTC day (90 days ago)")  # fmt: skip
    stats.add_argument("--to", dest="to_date", metavar="YYYY-MM-DD",
                       help="up to this UTC day, inclusive (today)")  # fmt: skip
    expiring = common.command(
        commands, "expiring", cmd_expiring, "client: subscriptions ending soon (ops, reseller)"
    )
    expiring.add_argument("--before", help="ending before this time (default: in 30 days)")
    expiring.add_argument("--reseller", help="one reseller (a reseller's token: its own)")
    expiring.add_argument("--limit", type=int, default=100, help="rows at most (100)")
