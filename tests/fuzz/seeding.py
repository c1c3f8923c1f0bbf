"""Real things for the fuzzer to aim at: keys issued, activated and revoked, a plan, pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.fuzz.strategies import Known
from tests.support import Client


def seed(client: Client) -> Known:
    known = Known()
    for reseller in ("acme", "globex"):
        issued = client.issue(8, reseller=reseller, request_id=f"fuzz-{reseller}")
        known.strings += [issued.batch_id, f"fuzz-{reseller}"]
        known.strings += [k.code for k in issued.keys] + [k.key_id for k in issued.keys]
        known.positions.append(issued.position)
    codes = [s for s in known.strings if s.startswith("INT-")]
    for n, code in enumerate(codes[:4]):
        account, session = f"fuzz-acct-{n}", f"fuzz-sess-{n}"
        known.strings += [account, session]
        known.positions.append(client.activate(code, account, session).position)
    revoked = client.keys.RevokeKey(
        pb.RevokeKeyRequest(code=codes[5], reason="fuzz seed"),
        metadata=Client.as_("ops"),
        timeout=10,
    )
    known.positions.append(revoked.position)
    page = client.keys.ListKeys(
        pb.ListKeysRequest(page_size=2), metadata=Client.as_("ops"), timeout=10
    )
    known.strings.append(page.next_page_token)
    known.strings += ["2026-11-01", "2026-12-01", "KeyIssued", "KeyActivated", "fuzz-sub-1"]
    plan = _plan(client)
    if plan is not None:
        known.positions.append(plan.position)
        known.strings.append(plan.plan_id)
    return known


def _plan(client: Client) -> pb.RecordPlanEventResponse | None:
    now = datetime.now(UTC)

    def stamp(value: datetime) -> timestamp_pb2.Timestamp:
        out = timestamp_pb2.Timestamp()
        out.FromDatetime(value)
        return out

    request = pb.RecordPlanEventRequest(
        billing_event_id="fuzz-evt-1",
        subscription_id="fuzz-sub-1",
        account_id="fuzz-acct-0",
        product=pb.PRODUCT_INTEGRATIONS,
        tier=pb.TIER_GROWTH,
        seats=2,
        kind=pb.PLAN_EVENT_KIND_STARTED,
        period_starts_at=stamp(now),
        period_ends_at=stamp(now + timedelta(days=30)),
        occurred_at=stamp(now),
    )
    response: pb.RecordPlanEventResponse = client.billing.RecordPlanEvent(
        request, metadata=Client.as_("billing"), timeout=10
    )
    return response
