"""Allowance tokens (rules §13), the part no server call shows: how many tokens the shipped
verifier checks per second on one core. (GetAllowanceToken itself is an operation of
`stages.operation`, compared with ceiling (b) like GetSeatAllowance.)

A caller verifies every token it relies on, so this is the cost on the caller's side: one thread,
a fresh key and a few hundred distinct tokens cycled, printed, never asserted.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.results import Results, Series, scalar_row
from license_svc.config import write_signing_key
from license_svc.domain.subscription import Entitlement, subscription_at
from license_svc.domain.tiers import Product, Tier
from license_svc.tokens.keys import KeyRing
from license_svc.tokens.mint import AllowanceTokens
from license_svc.tokens.verify import PublishedKeys, verify_allowance_token

log = logging.getLogger("bench")
TOKENS = 200


def verify_rate(results: Results, seconds: float) -> None:
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        key = Path(folder) / "signing-key.pem"
        write_signing_key(key)
        minter = AllowanceTokens(KeyRing(key), 900)
    entitlement = Entitlement(
        uuid.uuid4(), "bench", Product.INTEGRATIONS, Tier.GROWTH, 3,
        now - timedelta(days=1), now + timedelta(days=30),
    )  # fmt: skip
    found = subscription_at(Product.INTEGRATIONS, [entitlement], now)
    began = time.perf_counter()
    tokens = [
        minter.mint(f"bench-acct-{i}", Product.INTEGRATIONS, found, i, now).token
        for i in range(TOKENS)
    ]
    mint_s = (time.perf_counter() - began) / TOKENS
    jwks = PublishedKeys(minter.keys.current.jwks_json())  # parsed once, as a caller keeps it
    done, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < seconds:
        for token in tokens:
            verify_allowance_token(token, jwks, now)
        done += len(tokens)
    cpu = time.process_time() - cpu0
    per_core = done / cpu if cpu > 0 else 0.0
    series = results.add(Series("TokenVerify", "operation", "verifications/s per core"))
    series.levels.append(
        scalar_row(per_core, verifications=done, cpu_s=round(cpu, 3), mint_us=mint_s * 1e6)
    )
    log.info(
        "%-24s %12.0f verifications/s per core (%d in %.1f s CPU); minting %.0f µs a token",
        series.name,
        per_core,
        done,
        cpu,
        mint_s * 1e6,
    )
