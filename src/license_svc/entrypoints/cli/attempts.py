"""`license-svc attempts …`: support's commands for the failed-attempt limiter, run on the
database directly (like `projections …`), with the service's settings.

license-svc attempts lift --account A [--session S] --reason TEXT   over gRPC (LiftAttemptBlock)
license-svc attempts lift --on-database … [--by NAME]                 on the database
license-svc attempts show --account A
license-svc attempts purge [--days N]
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from datetime import timedelta

from license_svc import bootstrap, config
from license_svc.access.fields import BadRequest, Fields
from license_svc.attempts.upkeep import lift_block, lifts_of, purge
from license_svc.entrypoints.client.common import options as client_options
from license_svc.entrypoints.client.ops import lift_over_grpc

log = logging.getLogger("license_svc")

SMALL_POOL: dict[str, int] = {"pool_size": 1, "pool_max_overflow": 1}


def _service() -> bootstrap.Service:
    """The store with the maintenance commands' settings (a database and its pepper; beside a
    running `license-svc run`, its var/), saying in one line what it found by itself."""
    settings = config.load(purpose="tool")  # no secret
    if settings.found_development:
        print(f"license-svc: {settings.found_development}", file=sys.stderr)
    return bootstrap.build(settings.with_(**SMALL_POOL))


def cmd_lift(args: argparse.Namespace) -> int:
    """Over gRPC (LiftAttemptBlock, recorded with the token's caller) unless told to work on
    the database: --on-database, or a database URL set (support on the database host)."""
    if not (args.on_database or os.environ.get(config.PREFIX + "DATABASE_URL")):
        if args.by:
            log.error("attempts lift: --by is for --on-database; the server records the caller")
            return 2
        return lift_over_grpc(args)
    fields = Fields()  # the same rules as OpsService.LiftAttemptBlock
    account = fields.identifier(args.account, "account_id")
    session = fields.identifier(args.session, "session_id", required=False)
    reason = fields.text(args.reason, "reason", required=True)
    by = fields.text(args.by or f"cli:{getpass.getuser()}", "by", required=True)
    try:
        fields.done()
    except BadRequest as error:
        log.error("attempts lift: %s", error)
        return 2
    service = _service()
    try:
        lift = lift_block(service.limiter, account, session, by=by, reason=reason)
    finally:
        service.close()
    scope = f"session {session} of account {account}" if session else f"account {account}"
    print(f"lifted the block of {scope}: {lift.lifted} failed attempts no longer count")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    service = _service()
    try:
        attempts = service.limiter.recorded(args.account)
        lifts = lifts_of(service.limiter, args.account)
    finally:
        service.close()
    print(json.dumps({"failed_attempts": attempts, "lifts": lifts}, default=str, indent=2))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    service = _service()
    days = args.days or service.settings.attempt_retention_days
    try:
        deleted = purge(service.limiter, timedelta(days=days))
    finally:
        service.close()
    print(f"deleted {deleted} failed attempts older than {days} days")
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    attempts = commands.add_parser("attempts", help="the failed-attempt limiter: lift, show, purge")
    sub = attempts.add_subparsers(dest="attempts_command", required=True)
    lift = sub.add_parser(
        "lift",
        parents=[client_options()],
        help="lift a session's (or a whole account's) block: over gRPC, or --on-database",
    )
    lift.add_argument(
        "--on-database",
        action="store_true",
        help="on the database directly, not over gRPC (also when LICENSE_SVC_DATABASE_URL is set)",
    )
    lift.add_argument("--account", required=True, help="the account whose block to lift")
    lift.add_argument("--session", default="", help="only this dialog session (default: all)")
    lift.add_argument("--reason", required=True, help="why, for the audit")
    lift.add_argument(
        "--by", default="", help="--on-database: who lifts it (default: cli:<login name>)"
    )
    lift.set_defaults(func=cmd_lift)
    show = sub.add_parser("show", help="an account's failed attempts and lifts, as JSON")
    show.add_argument("--account", required=True, help="the account whose attempts to show")
    show.set_defaults(func=cmd_show)
    purge_ = sub.add_parser("purge", help="delete failed attempts past their retention now")
    purge_.add_argument("--days", type=int, default=0, help="retention (default: the setting)")
    purge_.set_defaults(func=cmd_purge)
