"""Seed data through the API, as a reseller and the portal would: issued and activated keys."""

from __future__ import annotations

import contextlib
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from bench.scenarios import (
    ISSUE_COUNT,
    LEASE_HOLDER,
    RENEWED,
    Stubs,
    account_name,
    acquire_request,
    auth,
    issue_request,
    session,
)
from license_svc.entrypoints.api.gen import licensing_pb2 as pb


@dataclass
class Seeds:
    accounts: list[str] = field(default_factory=list)  # with at least one active entitlement
    history: list[str] = field(default_factory=list)  # key ids with two events
    unredeemed: list[str] = field(default_factory=list)  # codes to validate (never activated)


class Seeder:
    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self._stubs = Stubs(self._channel)
        self.seeds: Seeds | None = None
        self.last_position = 0  # of the last activation seeded

    def close(self) -> None:
        self._channel.close()

    def issue(self, count: int) -> list[tuple[str, str]]:
        """`count` fresh keys as (key_id, code), in IssueKeys calls of up to 10,000."""
        keys: list[tuple[str, str]] = []
        while len(keys) < count:
            batch = min(ISSUE_COUNT, count - len(keys))
            answer = self._stubs.keys.IssueKeys(
                issue_request(batch), metadata=auth("reseller"), timeout=600
            )
            keys.extend((k.key_id, k.code) for k in answer.keys)
        return keys

    def codes(self, count: int) -> list[str]:
        return [code for _, code in self.issue(count)] if count > 0 else []

    def _activate(self, code_and_account: tuple[str, str]) -> int:
        return activate(self._stubs, *code_and_account)

    def catch_up(self, timeout: float = 60) -> None:
        """Wait until the views have processed the seeded activations (when they exist)."""
        request = pb.GetSeatAllowanceRequest(
            account_id=account_name(0),
            product=pb.PRODUCT_INTEGRATIONS,
            min_position=self.last_position,
        )
        # Not implemented yet, or the view lags: the measurement will show it.
        with contextlib.suppress(grpc.RpcError):
            self._stubs.entitlements.GetSeatAllowance(
                request, metadata=auth("integrations"), timeout=timeout
            )

    def seat_account(self, seats: int) -> str:
        """A new account holding one key of `seats` seats, once the allowance view shows it."""
        request = issue_request(1)
        request.seats = seats
        answer = self._stubs.keys.IssueKeys(request, metadata=auth("reseller"), timeout=60)
        account = f"bench-seats-{random.randrange(10**9)}"
        position = self._activate((answer.keys[0].code, account))
        self._stubs.entitlements.GetSeatAllowance(
            pb.GetSeatAllowanceRequest(
                account_id=account, product=pb.PRODUCT_INTEGRATIONS, min_position=position
            ),
            metadata=auth("integrations"),
            timeout=60,
        )
        return account

    def lease_batches(self, batches: int) -> list[str]:
        """`batches` batches of RENEWED leases (holder LEASE_HOLDER, an hour's TTL), each batch
        on an account of its own with exactly RENEWED seats, so the held leases never take a
        seat another scenario's accounts need; each batch its ids comma-joined."""
        accounts = [self.seat_account(RENEWED) for _ in range(batches)]
        wanted = [account for account in accounts for _ in range(RENEWED)]

        def take(account: str) -> str:
            answer = self._stubs.seats.AcquireSeat(
                acquire_request(account, LEASE_HOLDER, ttl=3600),
                metadata=auth("integrations"),
                timeout=60,
            )
            return str(answer.lease.lease_id)

        with ThreadPoolExecutor(8) as pool:
            leases = list(pool.map(take, wanted))
        return [",".join(leases[i : i + RENEWED]) for i in range(0, len(leases), RENEWED)]

    def reads(self, activated: int, unredeemed: int) -> Seeds:
        """Accounts with entitlements, keys with a history, and codes left to validate."""
        if self.seeds is None:
            keys = self.issue(activated + unredeemed)
            to_activate = keys[:activated]
            accounts = [account_name(i) for i in range(max(1, activated // 2))]
            pairs = [(code, accounts[i % len(accounts)]) for i, (_, code) in enumerate(to_activate)]
            with ThreadPoolExecutor(8) as pool:
                positions = list(pool.map(self._activate, pairs))
            self.last_position = max(positions, default=0)
            self.seeds = Seeds(
                accounts=accounts,
                history=[key_id for key_id, _ in to_activate],
                unredeemed=[code for _, code in keys[activated:]],
            )
            for values in (self.seeds.accounts, self.seeds.history, self.seeds.unredeemed):
                random.shuffle(values)
        return self.seeds


def activate(stubs: Stubs, code: str, account: str, timeout: float = 60) -> int:
    """Activate one code on `account` as the portal, in a session of its own; its position."""
    answer = stubs.activation.ActivateKey(
        pb.ActivateKeyRequest(
            code=code, account_id=account, session_id=session(), product=pb.PRODUCT_INTEGRATIONS
        ),
        metadata=auth("portal"),
        timeout=timeout,
    )
    return int(answer.position)
