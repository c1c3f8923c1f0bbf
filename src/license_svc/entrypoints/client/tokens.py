"""`license-svc token ACCOUNT` and `license-svc verify TOKEN [--jwks FILE]`: an allowance token from
the server, and the shipped verifier's judgement of one (rules §13).

`verify` with `--jwks` needs no server and no bearer token: it is what a caller does offline with
a key set it cached. Without `--jwks` it asks the server for its key set first.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from typing import Any

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.tokens.verify import KeySetError, TokenRefused, verify_allowance_token

from . import common


def cmd_token(conn: common.Connection, args: argparse.Namespace) -> int:
    request = pb.GetAllowanceTokenRequest(
        account_id=args.account,
        product=common.PRODUCTS[args.product],
        min_position=args.min_position,
    )
    answer = conn.call(conn.entitlements.GetAllowanceToken, request)
    if args.json:
        common.print_json({"token": answer.token, "expires_at": common.when(answer.expires_at)})
    else:
        print(answer.token)  # alone on its line: `license-svc verify "$(license-svc token A)"`
    return common.OK


def cmd_verify(args: argparse.Namespace) -> int:
    token = sys.stdin.read().strip() if args.token_text == "-" else args.token_text.strip()
    if args.jwks:
        try:
            with open(args.jwks, "rb") as found:
                jwks = found.read()
        except OSError as error:
            print(f"license-svc: --jwks {args.jwks}: {error.strerror}", file=sys.stderr)
            return common.USAGE
        return judge(token, jwks, args)
    return common.run(args, lambda conn, _: judge(token, signing_keys(conn), args))


def signing_keys(conn: common.Connection) -> str:
    return conn.call(conn.entitlements.GetSigningKeys, pb.GetSigningKeysRequest()).jwks


def judge(token: str, jwks: str | bytes, args: argparse.Namespace) -> int:
    try:
        at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else None
    except ValueError:
        print(f"license-svc: --at {args.at!r} is not a time", file=sys.stderr)
        return common.USAGE
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        claims = verify_allowance_token(
            token, jwks, at or datetime.now(UTC), audience=args.audience
        )
    except KeySetError as error:
        print(f"license-svc: the key set: {error}", file=sys.stderr)
        return common.USAGE
    except TokenRefused as error:
        print(f"refused: {error}", file=sys.stderr)
        return common.REFUSED
    fields: dict[str, Any] = dataclasses.asdict(claims)
    shown = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}
    if args.json:
        common.print_json(shown)
    else:
        common.table(["CLAIM", "VALUE"], [[k, "-" if v is None else v] for k, v in shown.items()])
    return common.OK


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    shared = common.options()
    token = commands.add_parser(
        "token", parents=[shared], help="client: an account's signed allowance token"
    )
    token.add_argument("account", metavar="ACCOUNT", help="the customer's account id")
    common.product_option(token)
    token.add_argument("--min-position", type=int, default=0, help="wait for this position")
    token.set_defaults(func=lambda args: common.run(args, cmd_token))
    verify = commands.add_parser(
        "verify", parents=[shared], help="check an allowance token (offline with --jwks)"
    )
    verify.add_argument("token_text", metavar="TOKEN", help="the token, or - to read stdin")
    verify.add_argument("--jwks", metavar="FILE", help="the key set (GetSigningKeys' jwks)")
    verify.add_argument("--audience", default="integrations", help="expected aud (integrations)")
    verify.add_argument("--at", help="judge at this time instead of now, e.g. 2026-03-03T14:03Z")
    verify.set_defaults(func=cmd_verify)
