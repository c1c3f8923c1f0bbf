"""What every client command shares: the connection options, calling, refusals, output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from license_svc import config
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc

from .refusals import Refusal, refusal_of

OK, REFUSED, USAGE, INTERRUPTED = 0, 1, 2, 130
M = TypeVar("M", bound=Message)


class UsageError(Exception):
    """A bad argument the parser could not see (a malformed time, no token): exit 2."""


class Refused(Exception):
    """The server said no (or could not be reached): one line (one JSON object with --json),
    exit 1."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.line())
        self.refusal = refusal


def options() -> argparse.ArgumentParser:
    """The options of every client command (a parent parser, so they go after the command)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--target", help="server address (LICENSE_SVC_TARGET, 127.0.0.1:50051)")
    group.add_argument(
        "--token", help="bearer token (LICENSE_SVC_TOKEN; beside a running `make run`: dev-ops)"
    )
    group.add_argument("--ca", metavar="FILE", help="TLS: trust this CA (PEM); implies --tls")
    group.add_argument("--tls", action="store_true", help="TLS with the system's CAs")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per call (30)")
    parent.add_argument("--json", action="store_true", help="JSON for scripts, not a table")
    return parent


class ServiceStubs:
    """The stubs of the licensing services on one channel (sync or aio: the stub classes are
    the same)."""

    def __init__(self, channel: Any) -> None:
        self.keys = pb_grpc.KeyServiceStub(channel)
        self.activation = pb_grpc.ActivationServiceStub(channel)
        self.entitlements = pb_grpc.EntitlementServiceStub(channel)
        self.audit = pb_grpc.AuditServiceStub(channel)
        self.ops = pb_grpc.OpsServiceStub(channel)
        self.billing = pb_grpc.BillingServiceStub(channel)
        self.webhooks = pb_grpc.WebhookServiceStub(channel)
        self.seats = pb_grpc.SeatServiceStub(channel)


class Connection(ServiceStubs):
    """One channel with the caller's token; the stubs of every service."""

    def __init__(self, args: argparse.Namespace) -> None:
        settings = config.load_client()
        self.target = args.target or settings.target
        token = args.token or settings.token
        if not token:
            raise UsageError("no token: set LICENSE_SVC_TOKEN or pass --token")
        if settings.note and not args.token:
            print(f"license-svc: {settings.note}", file=sys.stderr)
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.timeout = args.timeout
        if args.ca or args.tls:
            root = open(args.ca, "rb").read() if args.ca else None  # noqa: SIM115
            self.channel = grpc.secure_channel(self.target, grpc.ssl_channel_credentials(root))
        else:
            self.channel = grpc.insecure_channel(self.target)
        super().__init__(self.channel)

    def call(self, method: Callable[..., M], request: Message, timeout: float | None = None) -> M:
        try:
            return method(request, metadata=self.metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise Refused(refusal_of(error, self.target)) from None

    def close(self) -> None:
        self.channel.close()


def command(
    group: Any, name: str, handler: Callable[[Connection, argparse.Namespace], int], help: str
) -> argparse.ArgumentParser:
    """A client command `name` under `group` (a subparsers action): the connection options, and
    `handler` run over a connection by `run`."""
    parser: argparse.ArgumentParser = group.add_parser(name, parents=[options()], help=help)
    parser.set_defaults(func=lambda args: run(args, handler))
    return parser


def run(args: argparse.Namespace, command: Callable[[Connection, argparse.Namespace], int]) -> int:
    """Open the connection, run the command, turn refusals and usage errors into exit codes."""
    try:
        connection = Connection(args)
    except (UsageError, OSError) as error:
        print(f"license-svc: {error}", file=sys.stderr)
        return USAGE
    interrupted = False
    try:
        return command(connection, args)
    except UsageError as error:
        print(f"license-svc: {error}", file=sys.stderr)
        return USAGE
    except Refused as error:
        if getattr(args, "json", False):
            print(json.dumps(error.refusal.as_json(), ensure_ascii=False), file=sys.stderr)
        else:
            print(error.refusal.line(), file=sys.stderr)
        return REFUSED
    except KeyboardInterrupt:  # Ctrl-C during a call: no traceback
        # Not closing the channel: the interrupt may have landed inside gRPC's own bookkeeping
        # of the call (e.g. in its Condition's __exit__, the lock still held), and close() then
        # waits for a call that nothing completes — 4 of 200 interrupts of a followed stream
        # did so (see streams.py). The process is ending; the server sees the connection go.
        interrupted = True
        return INTERRUPTED
    finally:
        if not interrupted:
            connection.close()


def as_dict(message: Message) -> dict[str, Any]:
    """Proto JSON, except that 64-bit integers (positions, versions, counts) stay numbers, so
    `jq 'select(.position > 100)'` works (the JSON mapping would quote them)."""
    return _numbers(message, MessageToDict(message, preserving_proto_field_name=True))


_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64}


def _numbers(message: Message, value: dict[str, Any]) -> dict[str, Any]:
    for field in message.DESCRIPTOR.fields:
        if field.name not in value:
            continue
        if field.type in _INT64:
            found = value[field.name]
            value[field.name] = [int(v) for v in found] if isinstance(found, list) else int(found)
        elif field.message_type is not None and field.message_type.full_name.startswith("fisco"):
            inner = getattr(message, field.name)
            if isinstance(value[field.name], list):
                pairs = zip(inner, value[field.name], strict=True)
                value[field.name] = [_numbers(m, v) for m, v in pairs]
            else:
                value[field.name] = _numbers(inner, value[field.name])
    return value


def print_json(value: object) -> None:
    print(json.dumps(value, indent=None, ensure_ascii=False))


def enum_name(enum: Any, value: int) -> str:
    """TIER_GROWTH → growth, KEY_STATUS_ACTIVATED → activated, PRODUCT_CLOUD_POS → cloud_pos:
    the one spelling of the CLI, the page and the docs (the domain's values)."""
    name: str = enum.Name(value)
    for prefix in ("KEY_STATUS_", "TIER_", "PRODUCT_", "ENTITLEMENT_SOURCE_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return "-" if name == "UNSPECIFIED" else name.lower()


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def more_hint(shown: int, more: bool, what: str = "rows") -> None:
    """Under a table cut at --limit: that there are more, and how to see them."""
    if more:
        print(f"{shown} {what} shown; more exist — use --limit")


def when(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return stamp.ToDatetime(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(text: str, what: str) -> Timestamp:
    """An ISO 8601 instant (…Z or with an offset; naive means UTC) as a Timestamp."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what}: not an ISO 8601 time: {text!r}") from None
    stamp = Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return stamp


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Aligned columns; booleans as yes/no; an empty table says "none" instead of a header."""
    text = [[yes_no(cell) if isinstance(cell, bool) else str(cell) for cell in row] for row in rows]
    if not text:
        print("none")
        return
    widths = [max([len(h), *(len(row[i]) for row in text)]) for i, h in enumerate(headers)]
    for row in [list(headers), *text]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


PRODUCTS = {"integrations": pb.PRODUCT_INTEGRATIONS, "cloud_pos": pb.PRODUCT_CLOUD_POS}
ISSUABLE = {"integrations": pb.PRODUCT_INTEGRATIONS}  # Cloud POS comes from plans bought online
TIERS = {"starter": pb.TIER_STARTER, "growth": pb.TIER_GROWTH, "scale": pb.TIER_SCALE}
STATUSES = {
    "issued": pb.KEY_STATUS_ISSUED,
    "activated": pb.KEY_STATUS_ACTIVATED,
    "revoked": pb.KEY_STATUS_REVOKED,
    "expired": pb.KEY_STATUS_EXPIRED,
}


def spelling(choices: Mapping[str, object], prefix: str) -> Callable[[str], str]:
    """An argparse type: the one spelling (cloud_pos), and the others accepted as input
    (cloud-pos, CLOUD_POS, PRODUCT_CLOUD_POS) — help and errors show the one spelling."""

    def parse(text: str) -> str:
        name = text.strip().lower().replace("-", "_")
        name = name[len(prefix) :] if name.startswith(prefix) else name
        if name not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(choices)}")
        return name

    return parse


def choice_option(
    parser: argparse.ArgumentParser,
    flag: str,
    choices: Mapping[str, object],
    prefix: str,
    **kwargs: Any,
) -> None:
    """An option taking one of `choices`, in any of the spellings `spelling` accepts."""
    parser.add_argument(flag, type=spelling(choices, prefix), choices=choices, **kwargs)


def product_option(
    parser: argparse.ArgumentParser, help: str = "the product (integrations)"
) -> None:
    choice_option(parser, "--product", PRODUCTS, "product_", default="integrations", help=help)


def collect(
    conn: Connection, method: Callable[..., Any], request: Any, limit: int, field: str
) -> list[Any]:
    """Up to `limit` items (`field` of each page) of a paged list call, 500 a page at most;
    `request.page_token` is left at the next page's (empty: there are no more)."""
    found: list[Any] = []
    while len(found) < limit:
        request.page_size = min(500, limit - len(found))
        page = conn.call(method, request)
        found += getattr(page, field)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    return found
