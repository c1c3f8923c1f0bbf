"""`license-svc token ACCOUNT` and `license-svc verify TOKEN [--jwks FILE]` through the console
script against a real server; `verify --jwks` offline, with no server and no bearer token."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from tests.e2e.test_allowance_tokens import jwks_of
from tests.e2e.test_client_cli import SCRIPT, cli, ok_json, server
from tests.helpers import unique
from tests.support import ServerProcess

__all__ = ["server"]  # the module's server fixture, shared with the client's tests


def offline(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")}
    env["LICENSE_SVC_TARGET"] = "127.0.0.1:9"  # nothing listens: nothing may be asked
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_token_from_the_cli_verifies_online_and_offline(
    server: ServerProcess, tmp_path: Path
) -> None:
    account = unique("acct")
    minted = cli(server, "token", account, role="integrations")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert token.count(".") == 2

    online = ok_json(server, "verify", token, role="auditor")
    assert (online["account_id"], online["active"], online["seats"]) == (account, False, 0)

    jwks = tmp_path / "jwks.json"  # what a caller caches from GetSigningKeys
    jwks.write_text(jwks_of(server.client))
    done = offline("verify", token, "--jwks", str(jwks), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["token_id"] == online["token_id"]

    later = datetime.fromisoformat(str(online["expires_at"])) + timedelta(seconds=1)
    expired = offline("verify", token, "--jwks", str(jwks), "--at", later.isoformat())
    assert expired.returncode == 1
    assert expired.stderr.startswith("refused: expired")

    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-5]}AAAAA"
    tampered = offline("verify", forged, "--jwks", str(jwks))
    assert (tampered.returncode, tampered.stderr.split(":")[0]) == (1, "refused")
    assert offline("verify", token, "--jwks", str(tmp_path / "none.json")).returncode == 2
