"""The account cache never answers from before a position it was asked for or told about.

Two servers on one database, each with its own cache and notice listener (served over real
channels, sharing one injected clock): server A takes every write and keeps the views, both
answer reads. Each step's reads run on threads while the step's write is in flight; every answer
is then checked against a model of the account's entitlements at the position it claims.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from projections.allowance import AllowanceView
from projections.base import generation_name
from tests.e2e.test_entitlements import allowance, revoke_by_ops, summary
from tests.e2e.test_plans import plan_event, record
from tests.helpers import unique
from tests.support import Client, FakeClock

ACCOUNTS = 3


@dataclass
class Key:
    key_id: str
    seats: int
    starts: datetime
    ends: datetime
    activated_at: int  # position
    revoked_at: int | None = None


@dataclass
class Model:
    accounts: list[str]
    keys: dict[str, list[Key]] = field(default_factory=dict)

    def seats(self, account: str, position: int, now: datetime) -> int:
        return sum(
            k.seats
            for k in self.keys.get(account, [])
            if k.activated_at <= position
            and (k.revoked_at is None or k.revoked_at > position)
            and k.starts <= now < k.ends
        )

    def last_change(self, account: str, up_to: int) -> int:
        changes = [k.activated_at for k in self.keys.get(account, [])]
        changes += [k.revoked_at for k in self.keys.get(account, []) if k.revoked_at]
        return max([p for p in changes if p <= up_to], default=0)


@dataclass
class Read:
    server: int
    account: str
    now: datetime
    min_position: int
    heard: int  # the server's highest heard notice position just before the call
    seats: int
    position: int


@dataclass
class Servers:
    services: list[Service]
    clients: list[Client]
    clock: FakeClock

    def heard(self, index: int) -> int:
        views = self.services[index].views
        live = generation_name(AllowanceView.name, views.live_generation(AllowanceView.name))
        return views.cache.heard_position(live)


@pytest.fixture
def servers(
    make_service: Callable[..., Service],
    clock: FakeClock,
    serve_in_process: Callable[[Service], Client],
) -> Servers:
    writer, replica = make_service(clock), make_service(clock)
    bootstrap.start_projections(writer)
    return Servers([writer, replica], [serve_in_process(writer), serve_in_process(replica)], clock)


def _read(servers: Servers, index: int, account: str, min_position: int, kind: str) -> Read:
    now, heard = servers.clock(), servers.heard(index)
    client = servers.clients[index]
    answer = (summary if kind == "summary" else allowance)(client, account, position=min_position)
    return Read(index, account, now, min_position, heard, answer.seats, answer.position)


def _activate(client: Client, model: Model, account: str, seats: int, months: int) -> int:
    code = client.issue(seats=seats, period_months=months).keys[0].code
    done = client.activate(code, account)
    e = done.entitlement
    starts = e.period_starts_at.ToDatetime(tzinfo=UTC)
    ends = e.period_ends_at.ToDatetime(tzinfo=UTC)
    model.keys.setdefault(account, []).append(Key(e.key_id, seats, starts, ends, done.position))
    return int(done.position)


def _revoke(client: Client, model: Model, account: str) -> int:
    live = [k for k in model.keys.get(account, []) if k.revoked_at is None]
    if not live:
        return 0
    position = revoke_by_ops(client, live[0].key_id)
    live[0].revoked_at = position
    return position


def _check(model: Model, reads: list[Read]) -> None:
    for read in reads:
        label = f"{read}"
        assert read.position >= read.min_position, label
        assert read.seats == model.seats(read.account, read.position, read.now), label
        assert read.position >= model.last_change(read.account, read.heard), label


write = st.one_of(
    st.tuples(
        st.just("activate"), st.integers(0, ACCOUNTS - 1), st.integers(1, 5), st.integers(1, 3)
    ),
    st.tuples(st.just("revoke"), st.integers(0, ACCOUNTS - 1), st.just(0), st.just(0)),
    st.tuples(st.just("advance"), st.just(0), st.integers(5, 40), st.just(0)),
)
read = st.tuples(
    st.integers(0, 1),
    st.integers(0, ACCOUNTS - 1),
    st.booleans(),
    st.sampled_from(["allowance", "summary"]),
)
step = st.tuples(write, st.lists(read, min_size=1, max_size=6))


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=4, max_size=12))
def test_no_read_answers_from_before_its_min_position_or_a_notice_its_server_heard(
    servers: Servers,
    steps: list[tuple[tuple[str, int, int, int], list[tuple[int, int, bool, str]]]],
) -> None:
    model = Model([unique("acct") for _ in range(ACCOUNTS)])
    writer = servers.clients[0]
    reads: list[Read] = []
    last = 0
    with ThreadPoolExecutor(6) as pool:
        for (kind, who, amount, months), step_reads in steps:
            account = model.accounts[who]
            if kind == "advance":  # no read in flight: each read's clock is known
                servers.clock.advance(days=amount)
            futures = [
                pool.submit(_read, servers, server, model.accounts[a], last if with_min else 0, k)
                for server, a, with_min, k in step_reads
            ]
            if kind == "activate":
                last = max(last, _activate(writer, model, account, amount, months))
            elif kind == "revoke":
                last = max(last, _revoke(writer, model, account))
            reads += [f.result() for f in futures]
    _check(model, reads)
    assert sum(s.views.cache.stats.hits for s in servers.services) > 0  # the cache was in play


def test_a_killed_listen_connection_never_yields_a_stale_answer(
    servers: Servers, sql: psycopg.Connection
) -> None:
    model = Model([unique("acct")])
    account, writer, replica = model.accounts[0], servers.clients[0], servers.clients[1]
    position = _activate(writer, model, account, 2, 12)
    for _ in range(2):  # the second answer is the cached one
        assert allowance(replica, account, position=position).seats == 2
    cache = servers.services[1].views.cache
    assert len(cache) >= 1

    notices = servers.services[1].views.notices
    killed = notices.backend_pid
    sql.execute("SELECT pg_terminate_backend(%s)", (killed,))
    position = _activate(writer, model, account, 3, 12)
    allowance(writer, account, position=position)  # the view has the change
    assert allowance(replica, account).seats == 5  # heard nothing, cached nothing: Postgres
    assert cache.stats.cleared >= 2

    position = _activate(writer, model, account, 1, 12)  # maybe before it listens again
    allowance(writer, account, position=position)
    assert allowance(replica, account).seats == 6
    assert allowance(replica, account, position=position).seats == 6


def _heard(servers: Servers, index: int, position: int) -> None:
    """Until server `index` has heard the allowance view's notice of `position`."""
    notices = servers.services[index].views.notices
    assert notices.wait(lambda: servers.heard(index) >= position, 30), "no notice heard"


def test_a_plan_bought_online_changes_the_cached_answer_once_the_replica_heard_it(
    servers: Servers,
) -> None:
    account, writer, replica = unique("acct"), servers.clients[0], servers.clients[1]
    assert allowance(replica, account).seats == 0
    assert allowance(replica, account).seats == 0  # cached: no entitlement at all
    started = record(
        writer, plan_event(account, unique("sub"), pb.PLAN_EVENT_KIND_STARTED, servers.clock())
    )
    _heard(servers, 1, started.position)
    assert allowance(replica, account).seats == 3
    second = record(
        writer,
        plan_event(
            account,
            unique("sub"),
            pb.PLAN_EVENT_KIND_STARTED,
            servers.clock(),
            seats=2,
        ),
    )
    _heard(servers, 1, second.position)
    assert allowance(replica, account).seats == 5
