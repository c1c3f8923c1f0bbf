"""One scenario per measured operation: how to probe it, seed it and call it.

A scenario's client side (`call`) runs in the load-generator processes on `grpc.aio` stubs;
its parent side (`probe`, `items`) runs in the orchestrator with sync stubs. Items are what a
call consumes: reusable ones (accounts, key ids) are cycled; fresh ones (unredeemed codes for
ActivateKey) are used once, and a client stops early when it runs out.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.client.common import ServiceStubs as Stubs

TOKENS = {
    "reseller": "dev-reseller-acme",
    "portal": "dev-portal",
    "integrations": "dev-integrations",
    "auditor": "dev-auditor",
    "ops": "dev-ops",
    "billing": "dev-billing",
}
ISSUE_COUNT = 10_000  # keys per IssueKeys call, as in the issue
ACCOUNTS = 10_000


def auth(role: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKENS[role]}"),)


class Exhausted(Exception):
    """A client used all its fresh items."""


class Items:
    def __init__(self, items: list[Any], once: bool) -> None:
        self._items = items
        self._once = once
        self._next = 0

    def take(self) -> Any:
        if self._next >= len(self._items):
            if self._once or not self._items:
                raise Exhausted()
            self._next = 0
        item = self._items[self._next]
        self._next += 1
        return item


def account_name(index: int) -> str:
    return f"bench-acct-{index % ACCOUNTS:05d}"


def session() -> str:
    return uuid.uuid4().hex


# -- client side: one awaitable per call, returning the units it did (calls or rows) ---------

Call = Callable[[Stubs, Items], Awaitable[int]]


async def seat_allowance(stubs: Stubs, items: Items, timeout: float = 30) -> int:
    request = pb.GetSeatAllowanceRequest(
        account_id=items.take(), product=pb.PRODUCT_INTEGRATIONS, connections_in_use=1
    )
    await stubs.entitlements.GetSeatAllowance(
        request, metadata=auth("integrations"), timeout=timeout
    )
    return 1


async def allowance_token(stubs: Stubs, items: Items) -> int:
    request = pb.GetAllowanceTokenRequest(account_id=items.take(), product=pb.PRODUCT_INTEGRATIONS)
    await stubs.entitlements.GetAllowanceToken(request, metadata=auth("integrations"), timeout=30)
    return 1


async def subscription_summary(stubs: Stubs, items: Items) -> int:
    request = pb.GetSubscriptionSummaryRequest(
        account_id=items.take(), product=pb.PRODUCT_INTEGRATIONS
    )
    await stubs.entitlements.GetSubscriptionSummary(
        request, metadata=auth("integrations"), timeout=30
    )
    return 1


async def validate_key(stubs: Stubs, items: Items) -> int:
    request = pb.ValidateKeyRequest(
        code=items.take(),
        account_id=account_name(random.randrange(ACCOUNTS)),
        session_id=session(),
        product=pb.PRODUCT_INTEGRATIONS,
    )
    await stubs.activation.ValidateKey(request, metadata=auth("portal"), timeout=30)
    return 1


async def _activate(stubs: Stubs, code: str, account: str) -> int:
    request = pb.ActivateKeyRequest(
        code=code, account_id=account, session_id=session(), product=pb.PRODUCT_INTEGRATIONS
    )
    answer = await stubs.activation.ActivateKey(request, metadata=auth("portal"), timeout=30)
    return int(answer.position)


async def activate_key(stubs: Stubs, items: Items) -> int:
    await _activate(stubs, items.take(), account_name(random.randrange(ACCOUNTS)))
    return 1


async def read_your_writes(stubs: Stubs, items: Items) -> int:
    account = f"bench-ryw-{uuid.uuid4().hex[:12]}"
    position = await _activate(stubs, items.take(), account)
    request = pb.GetSeatAllowanceRequest(
        account_id=account, product=pb.PRODUCT_INTEGRATIONS, min_position=position
    )
    answer = await stubs.entitlements.GetSeatAllowance(
        request, metadata=auth("integrations"), timeout=30
    )
    if answer.seats <= 0:
        raise RuntimeError("read-your-writes: the allowance does not show the activation")
    return 1


def issue_request(count: int = ISSUE_COUNT) -> pb.IssueKeysRequest:
    return pb.IssueKeysRequest(
        reseller_id="acme",
        product=pb.PRODUCT_INTEGRATIONS,
        tier=pb.TIER_GROWTH,
        seats=3,
        period_months=12,
        count=count,
        request_id=f"bench-{uuid.uuid4().hex}",
    )


async def issue_keys(stubs: Stubs, items: Items) -> int:
    answer = await stubs.keys.IssueKeys(issue_request(), metadata=auth("reseller"), timeout=300)
    return len(answer.keys)


async def key_history(stubs: Stubs, items: Items) -> int:
    request = pb.GetKeyHistoryRequest(key_id=items.take())
    await stubs.audit.GetKeyHistory(request, metadata=auth("auditor"), timeout=30)
    return 1


def plan_started(subscription_id: str) -> pb.RecordPlanEventRequest:
    """A provider's STARTED event for a new plan: one new aggregate, one append."""
    request = pb.RecordPlanEventRequest(
        billing_event_id=f"evt-{subscription_id}",
        subscription_id=subscription_id,
        account_id=account_name(random.randrange(ACCOUNTS)),
        product=pb.PRODUCT_INTEGRATIONS,
        tier=pb.TIER_GROWTH,
        seats=3,
        kind=pb.PLAN_EVENT_KIND_STARTED,
    )
    request.occurred_at.GetCurrentTime()
    request.period_starts_at.GetCurrentTime()
    request.period_ends_at.FromSeconds(request.period_starts_at.seconds + 30 * 86_400)
    return request


async def record_plan_event(stubs: Stubs, items: Items) -> int:
    request = plan_started(f"bench-sub-{uuid.uuid4().hex}")
    await stubs.billing.RecordPlanEvent(request, metadata=auth("billing"), timeout=30)
    return 1


# -- seat leases (rules §12) ----------------------------------------------------------------

RENEWED = 100  # leases per RenewSeats call
LEASE_HOLDER = "bench"


def acquire_request(account: str, holder: str = "bench", ttl: int = 0) -> pb.AcquireSeatRequest:
    return pb.AcquireSeatRequest(
        account_id=account,
        product=pb.PRODUCT_INTEGRATIONS,
        connection_id=f"bench-{uuid.uuid4().hex}",
        holder=holder,
        ttl_seconds=ttl,
    )


async def _release(stubs: Stubs, lease_id: str) -> int:
    await stubs.seats.ReleaseSeat(
        pb.ReleaseSeatRequest(lease_id=lease_id), metadata=auth("integrations"), timeout=30
    )
    return 1


async def seat_pair(stubs: Stubs, items: Items) -> int:
    """AcquireSeat then ReleaseSeat on a seeded account (6 seats each, few callers share one)."""
    answer = await stubs.seats.AcquireSeat(
        acquire_request(items.take()), metadata=auth("integrations"), timeout=30
    )
    return await _release(stubs, answer.lease.lease_id)


async def renew_hundred(stubs: Stubs, items: Items) -> int:
    """The heartbeat: RenewSeats of one seeded batch of 100 leases (holder "bench")."""
    lease_ids = items.take().split(",")
    renewed = await stubs.seats.RenewSeats(
        pb.RenewSeatsRequest(holder=LEASE_HOLDER, lease_ids=lease_ids),
        metadata=auth("integrations"),
        timeout=30,
    )
    if not all(r.renewed for r in renewed.leases):
        raise RuntimeError("RenewSeats: a held lease was not renewed")
    return 1


async def contended_seats(stubs: Stubs, items: Items) -> int:
    """Every caller on one account of 5 seats: acquire, and release what was granted. A refusal
    for want of a seat is an answer (counted); any other error is one."""
    try:
        answer = await stubs.seats.AcquireSeat(
            acquire_request(items.take(), ttl=10), metadata=auth("integrations"), timeout=30
        )
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return 1
        raise
    return await _release(stubs, answer.lease.lease_id)


async def ceiling_call(stubs: Stubs, items: Items) -> int:
    """Ceilings (a)–(c) answer GetSeatAllowance: the very call of the read path."""
    return await seat_allowance(stubs, items)


# -- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    method: str  # full gRPC path
    request: Any
    response_type: Any
    role: str


def _probe(service: str, method: str, request: Any, role: str) -> Probe:
    """The probe of one method: its path and answer's type as the proto declares them."""
    declared = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    response_type = getattr(pb, declared.output_type.name)
    return Probe(f"/{declared.containing_service.full_name}/{method}", request, response_type, role)


def _account_probe(service: str, method: str, role: str, **fields: str) -> Probe:
    """The probe of a method asked about account "probe" on integrations (plus `fields`)."""
    declared = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    request_type = getattr(pb, declared.input_type.name)
    request = request_type(account_id="probe", product=pb.PRODUCT_INTEGRATIONS, **fields)
    return _probe(service, method, request, role)


@dataclass(frozen=True)
class Scenario:
    name: str
    call: Call
    # "accounts" | "unredeemed" (cycled) | "fresh" (once) | "history" | "none"; seat leases:
    # "contended" (one account of 5 seats), "lease_batches" (100 lease ids, comma-joined)
    items: str
    ceiling: str  # the series this one is compared with
    probes: tuple[Probe, ...] = ()
    unit: str = "calls/s"
    long_calls: bool = False


_ALLOWANCE = _account_probe("EntitlementService", "GetSeatAllowance", "integrations")
_TOKEN = _account_probe("EntitlementService", "GetAllowanceToken", "integrations")
_SUMMARY = _account_probe("EntitlementService", "GetSubscriptionSummary", "integrations")
_VALIDATE = _account_probe(
    "ActivationService", "ValidateKey", "portal", code="probe", session_id="probe"
)
_ACTIVATE = _account_probe(
    "ActivationService", "ActivateKey", "portal", code="probe", session_id="probe"
)
_ISSUE = _probe("KeyService", "IssueKeys", issue_request(count=1), "reseller")
_PLAN = _probe("BillingService", "RecordPlanEvent", plan_started("bench-probe"), "billing")
_ACQUIRE = _account_probe("SeatService", "ListSeatLeases", "integrations")
_HISTORY = _probe(
    "AuditService",
    "GetKeyHistory",
    pb.GetKeyHistoryRequest(key_id=str(uuid.UUID(int=0))),
    "auditor",
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("GetSeatAllowance", seat_allowance, "accounts", "b_select", (_ALLOWANCE,)),
        # The same read as GetSeatAllowance, then an Ed25519 signature (rules §13).
        Scenario("GetAllowanceToken", allowance_token, "accounts", "b_select", (_TOKEN,)),
        Scenario(
            "GetSubscriptionSummary", subscription_summary, "accounts", "b_select", (_SUMMARY,)
        ),
        Scenario("ValidateKey", validate_key, "unredeemed", "b_select", (_VALIDATE,)),
        Scenario("ActivateKey", activate_key, "fresh", "e_repository", (_ACTIVATE,)),
        Scenario("RecordPlanEvent", record_plan_event, "none", "e_repository", (_PLAN,)),
        Scenario("IssueKeys", issue_keys, "none", "d_copy", (_ISSUE,), "rows/s", long_calls=True),
        Scenario("GetKeyHistory", key_history, "history", "b_select", (_HISTORY,)),
        Scenario("ReadYourWrites", read_your_writes, "fresh", "c_insert", (_ACTIVATE, _ALLOWANCE)),
        Scenario("SeatLeasePair", seat_pair, "accounts", "e_repository", (_ACQUIRE,)),
        Scenario("RenewSeats100", renew_hundred, "lease_batches", "c_insert", (_ACQUIRE,)),
        Scenario("ContendedSeats", contended_seats, "contended", "e_repository", (_ACQUIRE,)),
    ]
}
CEILING_CALL = Scenario("ceiling", ceiling_call, "ceiling_accounts", "")


def lookup(name: str) -> Scenario:
    return CEILING_CALL if name == CEILING_CALL.name else SCENARIOS[name]


def unavailable(channel: grpc.Channel, scenario: Scenario) -> str:
    """'' when every method the scenario needs is served, else the server's reason."""
    for probe in scenario.probes:
        method = channel.unary_unary(
            probe.method,
            request_serializer=type(probe.request).SerializeToString,
            response_deserializer=probe.response_type.FromString,
        )
        try:
            method(probe.request, metadata=auth(probe.role), timeout=30)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
                return f"{probe.method.rsplit('/', 1)[1]}: {error.details()}"  # type: ignore[attr-defined]
    return ""
