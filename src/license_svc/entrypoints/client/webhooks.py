"""`license-svc webhooks add|list|rm|deliveries|redeliver`: a reseller's (or ops') webhook
endpoints and their delivery log, over gRPC. (`license-svc webhooks` alone runs the sender.)"""

from __future__ import annotations

import argparse

from license_svc.entrypoints.api.gen import licensing_pb2 as pb

from .common import OK, Connection, as_dict, collect, command, print_json, table, when

TYPES = (
    "key.activated",
    "key.revoked",
    "key.expired",
    "batch.issued",
    "subscription.expiring_soon",
)


def _state(value: int) -> str:
    return pb.WebhookDeliveryState.Name(value).removeprefix("WEBHOOK_DELIVERY_STATE_").lower()


def cmd_add(conn: Connection, args: argparse.Namespace) -> int:
    answer = conn.call(
        conn.webhooks.CreateWebhookEndpoint,
        pb.CreateWebhookEndpointRequest(
            reseller_id=args.reseller or "", url=args.url, event_types=args.type or []
        ),
    )
    if args.json:
        print_json(as_dict(answer))
        return OK
    print(f"endpoint {answer.endpoint_id}")
    print(f"secret   {answer.secret}   (shown once: keep it now)")
    return OK


def cmd_list(conn: Connection, args: argparse.Namespace) -> int:
    answer = conn.call(
        conn.webhooks.ListWebhookEndpoints,
        pb.ListWebhookEndpointsRequest(reseller_id=args.reseller or ""),
    )
    if args.json:
        for endpoint in answer.endpoints:
            print_json(as_dict(endpoint))
        return OK
    table(
        ["ENDPOINT", "RESELLER", "URL", "TYPES", "STATE", "PENDING", "OLDEST PENDING"],
        [[e.endpoint_id, e.reseller_id, e.url, ",".join(e.event_types) or "all",
          f"disabled: {e.disabled_reason}" if e.disabled else "enabled", e.pending_deliveries,
          when(e.oldest_pending_at)] for e in answer.endpoints],
    )  # fmt: skip
    return OK


def cmd_rm(conn: Connection, args: argparse.Namespace) -> int:
    answer = conn.call(
        conn.webhooks.DeleteWebhookEndpoint,
        pb.DeleteWebhookEndpointRequest(endpoint_id=args.endpoint),
    )
    if args.json:
        print_json(as_dict(answer))
    else:
        done = "deleted" if answer.deleted else "was already deleted"
        print(f"{args.endpoint} {done}; {answer.cancelled_deliveries} pending deliveries cancelled")
    return OK


def cmd_deliveries(conn: Connection, args: argparse.Namespace) -> int:
    request = pb.ListWebhookDeliveriesRequest(endpoint_id=args.endpoint)
    found = collect(conn, conn.webhooks.ListWebhookDeliveries, request, args.limit, "deliveries")
    if args.json:
        for delivery in found:
            print_json(as_dict(delivery))
        return OK
    table(
        ["MESSAGE", "TYPE", "POSITION", "STATE", "ATTEMPTS", "STATUS", "CREATED", "LAST ERROR"],
        [[d.message_id, d.event_type, d.position, _state(d.state), d.attempts,
          d.last_status_code or "-", when(d.created_at), d.last_error[:60] or "-"]
         for d in found],
    )  # fmt: skip
    return OK


def cmd_redeliver(conn: Connection, args: argparse.Namespace) -> int:
    answer = conn.call(
        conn.webhooks.RedeliverWebhook,
        pb.RedeliverWebhookRequest(endpoint_id=args.endpoint, message_id=args.message),
    )
    if args.json:
        print_json(as_dict(answer))
    else:
        print(f"{answer.delivery.message_id}: {_state(answer.delivery.state)}, sent again soon")
    return OK


def register(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Adds `webhooks` and its client commands; the caller gives `webhooks` alone its meaning."""
    webhooks: argparse.ArgumentParser = commands.add_parser(
        "webhooks", help="the webhook sender; or (client) add|list|rm|deliveries|redeliver"
    )
    group = webhooks.add_subparsers(dest="webhooks_command")

    add = command(group, "add", cmd_add, "create an endpoint (prints its secret once)")
    add.add_argument("url", help="https:// address of the partner's receiver")
    add.add_argument("--reseller", help="ops: whose endpoint (a reseller: its own)")
    add.add_argument("--type", action="append", choices=TYPES, help="repeat; default: every type")
    command(group, "list", cmd_list, "list endpoints").add_argument(
        "--reseller", help="ops: one reseller's endpoints"
    )
    command(group, "rm", cmd_rm, "delete an endpoint").add_argument(
        "endpoint", metavar="ENDPOINT_ID", help="the endpoint id CreateWebhookEndpoint answered"
    )
    deliveries = command(
        group, "deliveries", cmd_deliveries, "an endpoint's deliveries, newest first"
    )
    deliveries.add_argument(
        "endpoint", metavar="ENDPOINT_ID", help="the endpoint id CreateWebhookEndpoint answered"
    )
    deliveries.add_argument("--limit", type=int, default=50, help="rows at most (50)")
    redeliver = command(group, "redeliver", cmd_redeliver, "send a message again (same webhook-id)")
    redeliver.add_argument(
        "endpoint", metavar="ENDPOINT_ID", help="the endpoint id CreateWebhookEndpoint answered"
    )
    redeliver.add_argument("message", metavar="MESSAGE_ID", help="the webhook-id to send again")
    return webhooks
