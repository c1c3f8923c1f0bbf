"""`license-svc`: the service's one command line.

license-svc serve                      a gRPC server replica
license-svc run                        development: server + projections + sweeper, embedded DB
"""

from __future__ import annotations

import argparse
import logging
import sys

from license_svc import bootstrap, config


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from license_svc.api.server import serve

    settings = config.load()
    if args.dev:
        settings = bootstrap.with_database(settings)
    service = bootstrap.build(settings)
    return serve(service)


def main(argv: list[str] | None = None) -> int:
    _logging()
    parser = argparse.ArgumentParser(prog="license-svc", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a gRPC server replica")
    serve.set_defaults(func=cmd_serve, dev=False)
    run = commands.add_parser("run", help="development: everything in one process")
    run.set_defaults(func=cmd_serve, dev=True)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except config.ConfigError as error:
        logging.getLogger("license_svc").error("configuration error: %s", error)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
