"""The people's client: `license-svc keys …`, `activate`, `validate`, `allowance`, `summary`,
`stats`, `expiring`, `audit …`, `token`, `verify`, `seats …` — over gRPC with a bearer token,
human tables or `--json`.

Exit codes: 0 ok, 1 refused (the server's message on one line), 2 usage. `register` adds the
commands to the service's one command line (`license_svc.entrypoints.cli.main`).
"""

from __future__ import annotations

import argparse

from . import audit, keys, ops, reads, seats, tokens


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for module in (keys, reads, ops, audit, tokens, seats):
        module.register(commands)
