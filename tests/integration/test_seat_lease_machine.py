"""A hypothesis state machine drives seat leases against real Postgres and an injected clock:
acquire, renew, release, time passing past TTLs, keys activated and revoked, periods ending. A
model of the rules (§12) predicts every answer; after every step the live leases are the model's
(so a lease past its TTL never blocks an acquire, and a grant never took more seats than there
were), and the events replayed give the same live set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.domain.seats import NoActiveSubscription, NoSeatAvailable, SeatLease
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.seats.sweeper import LeaseSweeper
from projections.allowance import AllowanceView
from tests.helpers import unique
from tests.support import FakeClock

INT = Product.INTEGRATIONS
CONNECTIONS = [f"conn-{n}" for n in range(6)]
HOLDER = "holder-m"


@dataclass
class ModelLease:
    lease_id: UUID
    connection: str
    granted_at: datetime
    expires_at: datetime
    ttl: int
    released: bool = False
    swept: bool = False  # its expiry is recorded (the sweeper ran after its expires_at)


@dataclass
class ModelKey:
    key_id: UUID
    seats: int
    ends_at: datetime
    revoked: bool = False


class SeatLeaseMachine(RuleBasedStateMachine):
    def __init__(self, service: Service, clock: FakeClock) -> None:
        super().__init__()
        self.service, self.clock = service, clock
        self.account = unique("acct")
        self.keys: list[ModelKey] = []
        self.leases: list[ModelLease] = []

    # -- the model ---------------------------------------------------------------------------

    def seats(self) -> int:
        now = self.clock()
        return sum(k.seats for k in self.keys if not k.revoked and k.ends_at > now)

    def active(self) -> bool:
        now = self.clock()
        return any(not k.revoked and k.ends_at > now for k in self.keys)

    def live(self) -> list[ModelLease]:
        now = self.clock()
        found = [x for x in self.leases if not x.released and x.expires_at > now]
        return sorted(found, key=lambda x: (x.granted_at, str(x.lease_id)))

    def wait_for_view(self, position: int) -> None:
        self.service.views.read(AllowanceView, position, 60, lambda view: (None, view.position()))

    # -- rules -------------------------------------------------------------------------------

    @initialize(seats=st.integers(1, 3))
    def start_with_a_key(self, seats: int) -> None:
        self.activate_a_key(seats)

    @rule(seats=st.integers(1, 3), months=st.integers(1, 2))
    def activate_a_key(self, seats: int, months: int = 1) -> None:
        batch = self.service.app.issue_keys(
            IssueKeys("acme", INT, Tier.GROWTH, seats, months, 1, unique("req"))
        )
        done = self.service.app.activate(batch.keys[0].key_id, self.account)
        assert done.key.period_ends_at is not None
        self.keys.append(ModelKey(done.key.id, seats, done.key.period_ends_at))
        self.wait_for_view(done.position)

    @rule(data=st.data())
    def revoke_a_key(self, data: st.DataObject) -> None:
        now = self.clock()
        revocable = [k for k in self.keys if not k.revoked and k.ends_at > now]
        if not revocable:
            return
        key = data.draw(st.sampled_from(revocable))
        change = self.service.app.revoke(key.key_id, reason="refund", revoked_by="ops", by_ops=True)
        key.revoked = True
        self.wait_for_view(change.position)

    @rule()
    def end_the_earliest_period(self) -> None:
        now = self.clock()
        ends = [k.ends_at for k in self.keys if not k.revoked and k.ends_at > now]
        if ends:
            self.clock.set(min(ends))

    @rule(seconds=st.sampled_from([1, 5, 9, 10, 11, 30, 61]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @rule(connection=st.sampled_from(CONNECTIONS), ttl=st.sampled_from([10, 30, 60]))
    def acquire(self, connection: str, ttl: int) -> None:
        now, live, seats = self.clock(), self.live(), self.seats()
        try:
            grant = self.service.seats.acquire(self.account, INT, connection, HOLDER, ttl)
        except NoActiveSubscription:
            assert not self.active()
            return
        except NoSeatAvailable as refused:
            assert self.active() and len(live) >= seats
            assert (refused.seats, refused.seats_leased) == (seats, len(live))
            assert refused.retry_after >= timedelta(seconds=1)
            return
        assert self.active()
        mine = [x for x in live if x.connection == connection]
        if mine:  # a retry: the same lease, renewed
            assert (grant.granted, grant.lease.lease_id) == (False, mine[0].lease_id)
            mine[0].expires_at, mine[0].ttl = now + timedelta(seconds=ttl), ttl
            return
        assert grant.granted and len(live) < seats  # a lease past its TTL never blocked this
        assert grant.seats_leased == len(live) + 1 <= seats
        self.leases.append(
            ModelLease(grant.lease.lease_id, connection, now, now + timedelta(seconds=ttl), ttl)
        )

    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        if not self.leases:
            return
        chosen = data.draw(st.lists(st.sampled_from(self.leases), min_size=1, max_size=4))
        now, live, seats = self.clock(), self.live(), self.seats()
        over = {x.lease_id for x in live[seats:]}
        answers = self.service.seats.renew(HOLDER, [x.lease_id for x in chosen])
        for lease, answer in zip(chosen, answers, strict=True):
            assert answer.renewed == (lease in live), (lease, answer)
            if answer.renewed:
                assert answer.over_allowance == (lease.lease_id in over)
                lease.expires_at = now + timedelta(seconds=lease.ttl)

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if not self.leases:
            return
        lease = data.draw(st.sampled_from(self.leases))
        answer = self.service.seats.release(lease.lease_id)
        assert answer.released == (lease in self.live())
        if answer.released:
            lease.released = True

    # -- after every step --------------------------------------------------------------------

    @invariant()
    def the_live_leases_are_the_models(self) -> None:
        actual = [x.lease_id for x in self.service.seats.live(self.account, INT)]
        assert actual == [x.lease_id for x in self.live()]

    @rule()
    def the_sweeper_runs(self) -> None:
        LeaseSweeper(self.service.seats).sweep_once()
        live = self.live()
        for lease in self.leases:
            if not lease.released and lease not in live:
                lease.swept = True
        assert self.replayed() == {x.lease_id for x in live}  # the events give the live set

    @invariant()
    def the_events_replayed_give_every_lease_not_yet_ended_in_them(self) -> None:
        unended = {x.lease_id for x in self.leases if not (x.released or x.swept)}
        assert self.replayed() == unended

    def replayed(self) -> set[UUID]:
        """The leases whose events hold no ending (a renewal is no event)."""
        found: set[UUID] = set()
        for lease in self.leases:
            aggregate: object = self.service.app.repository.get(lease.lease_id)
            assert isinstance(aggregate, SeatLease)
            if aggregate.ended_at is None:
                found.add(lease.lease_id)
        return found


@pytest.mark.slow
def test_seat_leases_follow_the_rules_whatever_the_order_of_events(
    make_service: Callable[..., Service], clock: FakeClock
) -> None:
    service = make_service(clock, pool_size=2, pool_max_overflow=4)
    bootstrap.start_projections(service)
    run_state_machine_as_test(
        lambda: SeatLeaseMachine(service, clock),  # type: ignore[arg-type,return-value]
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
