"""`license-svc keys issue|list|show|revoke`, `activate`, `validate`."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from license_svc.entrypoints.api.gen import licensing_pb2 as pb

from . import common
from .replays import mark_replayed

MAX_PER_CALL = 10_000  # IssueKeys' bound (rules §8)


def key_ref(text: str) -> dict[str, str]:
    """A key id (UUID) or a code: the two ways a request may name a key."""
    try:
        return {"key_id": str(uuid.UUID(text))}
    except ValueError:
        return {"code": text}


def key_rows(keys: list[pb.Key]) -> list[list[object]]:
    return [
        [
            k.key_id,
            k.hint,
            common.enum_name(pb.Tier, k.tier),
            k.seats,
            common.enum_name(pb.KeyStatus, k.status),
            k.reseller_id,
            k.account_id or "-",
            common.when(k.period_ends_at),
        ]
        for k in keys
    ]


KEY_HEADERS = ["KEY ID", "HINT", "TIER", "SEATS", "STATUS", "RESELLER", "ACCOUNT", "ENDS"]


class Progress:
    """`issued 3000/10000 keys` on stderr: rewritten in place on a terminal, a line otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()

    def show(self, done: int) -> None:
        bar = "#" * (30 * done // self.total)
        line = f"issuing [{bar:<30}] {done}/{self.total} keys"
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr)
        if self.tty and done == self.total:
            print(file=sys.stderr)


CSV_FIELDS = ["code", "key_id", "hint", "batch_id", "status"]


def open_csv(path: Path) -> TextIO:
    """A new file for the codes, readable by the owner only (they are secrets), opened before
    anything is issued. O_EXCL: never an existing file (whose mode, or whose readers, would be
    kept); O_NOFOLLOW with O_EXCL: never through a symlink, dangling or not."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise common.UsageError(
            f"--csv {path} exists (or is a symlink): codes go to a new file"
        ) from None
    except OSError as error:
        raise common.UsageError(f"--csv {path}: {error.strerror}") from None
    os.fchmod(descriptor, 0o600)  # whatever the umask
    return open(descriptor, "w", newline="")


def write_csv(out: TextIO, rows: list[dict[str, str]]) -> None:
    with out:
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def cmd_issue(conn: common.Connection, args: argparse.Namespace) -> int:
    """Issue in calls of at most --chunk keys, each with a request id derived from one base, so
    a rerun with the same --request-id replays the same keys instead of minting new ones."""
    if args.count < 1:
        raise common.UsageError("--count must be at least 1")
    base = args.request_id or f"cli-{uuid.uuid4().hex}"
    chunk = max(1, min(args.chunk, MAX_PER_CALL))
    progress = Progress(args.count) if args.count > chunk or args.csv else None
    out = open_csv(args.csv) if args.csv else None
    try:
        rows, batches, position, replayed = _issue(conn, args, base, chunk, progress)
        if replayed:
            mark_replayed(conn, rows, replayed, position, base)
    except BaseException:
        if out is not None:  # nothing of ours to keep: the empty file goes
            out.close()
            args.csv.unlink(missing_ok=True)
        raise
    if out is not None:
        write_csv(out, rows)
    if args.json:
        keys: list[dict[str, str]] = [] if args.csv else rows
        common.print_json({"batch_ids": batches, "count": len(rows), "position": position,
                    "replayed": bool(replayed), "keys": keys})  # fmt: skip
    elif args.codes:  # for $(…): the codes alone, and only keys that can still be handed out
        for row in rows:
            if row["status"] == "issued":
                print(row["code"])
    elif args.csv:
        verb = "replayed" if replayed else "issued"
        print(f"{verb} {len(rows)} keys in {len(batches)} batch(es); codes written to {args.csv}")
    else:
        common.table(
            ["CODE", "KEY ID", "HINT", "BATCH", "STATUS"], [list(r.values()) for r in rows]
        )
    return common.OK


def _issue(
    conn: common.Connection,
    args: argparse.Namespace,
    base: str,
    chunk: int,
    progress: Progress | None,
) -> tuple[list[dict[str, str]], list[str], int, list[str]]:
    rows: list[dict[str, str]] = []
    batches, position, done, part, replayed = [], 0, 0, 0, []
    while done < args.count:
        size = min(chunk, args.count - done)
        request_id = base if size == args.count else f"{base}/{part}"
        answer = conn.call(
            conn.keys.IssueKeys,
            pb.IssueKeysRequest(
                reseller_id=args.reseller,
                product=common.ISSUABLE[args.product],
                tier=common.TIERS[args.tier],
                seats=args.seats,
                period_months=args.months,
                count=size,
                request_id=request_id,
            ),
            timeout=max(args.timeout, 120.0),
        )
        batches.append(answer.batch_id)
        position = max(position, answer.position)
        if answer.replayed:
            replayed.append(answer.batch_id)
        rows += [
            {"code": k.code, "key_id": k.key_id, "hint": k.hint, "batch_id": answer.batch_id,
             "status": "issued"}
            for k in answer.keys
        ]  # fmt: skip
        done, part = done + size, part + 1
        if progress:
            progress.show(done)
    return rows, batches, position, replayed


def cmd_list(conn: common.Connection, args: argparse.Namespace) -> int:
    keys: list[pb.Key] = []
    token = ""
    while len(keys) < args.limit:
        page = conn.call(
            conn.keys.ListKeys,
            pb.ListKeysRequest(
                page_size=min(1000, args.limit - len(keys)),
                page_token=token,
                status=common.STATUSES[args.status] if args.status else pb.KEY_STATUS_UNSPECIFIED,
                reseller_id=args.reseller or "",
                batch_id=args.batch or "",
            ),
        )
        keys += page.keys
        token = page.next_page_token
        if not token:
            break
    if args.json:
        for key in keys:
            common.print_json(common.as_dict(key))
    else:
        common.table(KEY_HEADERS, key_rows(keys))
        common.more_hint(len(keys), bool(token), "keys")
    return common.OK


def show_key(key: pb.Key, args: argparse.Namespace, extra: dict[str, Any] | None = None) -> None:
    if args.json:
        common.print_json({"key": common.as_dict(key), **(extra or {})})
        return
    common.table(KEY_HEADERS, key_rows([key]))


def cmd_show(conn: common.Connection, args: argparse.Namespace) -> int:
    show_key(conn.call(conn.keys.GetKey, pb.GetKeyRequest(**key_ref(args.key))).key, args)
    return common.OK


def cmd_revoke(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(
        conn.keys.RevokeKey, pb.RevokeKeyRequest(**key_ref(args.key), reason=args.reason)
    )
    show_key(answer.key, args, {"position": answer.position})
    return common.OK


def dialog_request(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "code": args.code,
        "account_id": args.account,
        "session_id": args.session or f"cli-{uuid.uuid4().hex[:12]}",
        "product": common.PRODUCTS[args.product],
    }


def cmd_validate(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(conn.activation.ValidateKey, pb.ValidateKeyRequest(**dialog_request(args)))
    if args.json:
        common.print_json(common.as_dict(answer))
    else:
        common.table(
            ["KEY ID", "HINT", "TIER", "SEATS", "MONTHS", "INVOICES/MONTH", "SYNC"],
            [[answer.key_id, answer.hint, common.enum_name(pb.Tier, answer.tier), answer.seats,
              answer.period_months, answer.invoices_per_month, answer.sync]],
        )  # fmt: skip
    return common.OK


def cmd_activate(conn: common.Connection, args: argparse.Namespace) -> int:
    answer = conn.call(conn.activation.ActivateKey, pb.ActivateKeyRequest(**dialog_request(args)))
    if args.json:
        common.print_json(common.as_dict(answer))
        return common.OK
    e = answer.entitlement
    common.table(
        ["KEY ID", "HINT", "ACCOUNT", "TIER", "SEATS", "STARTS", "ENDS", "ALREADY ACTIVE"],
        [[e.key_id, e.hint, e.account_id, common.enum_name(pb.Tier, e.tier), e.seats,
          common.when(e.period_starts_at), common.when(e.period_ends_at), answer.already_active]],
    )  # fmt: skip
    return common.OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    keys = commands.add_parser("keys", help="client: issue, list, show and revoke keys")
    group = keys.add_subparsers(dest="keys_command", required=True)
    issue = common.command(group, "issue", cmd_issue, "issue activation keys (a reseller or ops)")
    issue.add_argument("--reseller", required=True, help="the reseller the keys are sold by")
    common.choice_option(
        issue, "--tier", common.TIERS, "tier_", required=True, help="the plan the keys unlock"
    )
    issue.add_argument("--seats", type=int, required=True, help="connections per key (1-10000)")
    issue.add_argument("--months", type=int, default=12, help="subscription period (12)")
    issue.add_argument("--count", type=int, default=1, help="how many keys (1)")
    common.choice_option(
        issue,
        "--product",
        common.ISSUABLE,
        "product_",
        default="integrations",
        help="what the keys are for (the only product"
        " sold as keys; Cloud POS comes from plans bought online)",
    )
    issue.add_argument("--request-id", help="idempotency key: a rerun replays the same keys")
    issue.add_argument("--chunk", type=int, default=1000, help="keys per call (1000)")
    issue.add_argument(
        "--codes", action="store_true", help="print only the codes, a line each (CODE=$(…))"
    )
    issue.add_argument(
        "--csv", type=Path, help="write code,key_id,hint,batch_id,status here (0600)"
    )
    listing = common.command(group, "list", cmd_list, "list keys (newest issued last)")
    common.choice_option(
        listing, "--status", common.STATUSES, "key_status_", help="only keys in this status"
    )
    listing.add_argument("--reseller", help="only this reseller's keys (ops, auditors)")
    listing.add_argument("--batch", help="only this batch's keys")
    listing.add_argument("--limit", type=int, default=100, help="keys at most (100)")
    show = common.command(group, "show", cmd_show, "one key")
    show.add_argument("key", metavar="KEY_ID|CODE", help="the key's id or its code")
    revoke = common.command(group, "revoke", cmd_revoke, "revoke a key")
    revoke.add_argument("key", metavar="KEY_ID|CODE", help="the key's id or its code")
    revoke.add_argument("--reason", required=True, help="why, kept in the key's history")
    for name, handler, text in [
        ("validate", cmd_validate, "client: check a code for an account (portal)"),
        ("activate", cmd_activate, "client: redeem a code for an account (portal)"),
    ]:
        dialog = common.command(commands, name, handler, text)
        dialog.add_argument("code", metavar="CODE", help="the activation key, INT-XXXX-XXXX-XXXX")
        dialog.add_argument("--account", required=True, help="the customer's account id")
        dialog.add_argument("--session", help="dialog session id (default: a fresh one)")
        common.product_option(dialog, "the product asked for")
