"""The command line as the test suite runs it with a shifted clock: the same `license-svc`,
except that LICENSE_SVC_CLOCK_OFFSET_SECONDS is honoured (every real command refuses it)."""

from __future__ import annotations

import sys

from license_svc.entrypoints.cli import main as cli

if __name__ == "__main__":
    cli.TEST_CLOCK_ALLOWED = True
    sys.exit(cli.main())
