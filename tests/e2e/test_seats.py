"""SeatService over a real channel to a real server with an injected clock (rules §12): a holder
killed mid-lease, seats that shrink under live leases, the allowance watch following grants and
releases (never renewals), who may call, and what a malformed request gets."""

from __future__ import annotations

import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import grpc
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from license_svc import bootstrap
from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.server import server_for
from license_svc.entrypoints.dashboard.server import start_dashboard
from tests.e2e.seats_support import (
    INT,
    account_with_seats,
    acquire,
    allowance,
    listed,
    release,
    renew,
    seats,
)
from tests.e2e.test_entitlements import revoke_by_ops
from tests.helpers import EVENTS_TABLE, rich, unique
from tests.support import REPO, TOKENS, Client, FakeClock

WAIT = 30.0
POOLS = {"pool_size": 2, "pool_max_overflow": 6}  # the database's connections are shared


@pytest.fixture
def api(serve_projected: Callable[..., tuple[Client, Service]]) -> Client:
    return serve_projected(**POOLS)[0]


def refused(call: Callable[[], object]) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    found = rich(failure.value)
    return found.code, found.reason, found.message


# A holder in a process of its own: it takes three leases, says their ids, and waits to be killed.
HOLDER = """
import sys, grpc
sys.path.insert(0, {src!r})
from license_svc.entrypoints.api.gen import licensing_pb2 as pb, licensing_pb2_grpc as pb_grpc
stub = pb_grpc.SeatServiceStub(grpc.insecure_channel({address!r}))
for n in range(3):
    answer = stub.AcquireSeat(
        pb.AcquireSeatRequest(account_id={account!r}, product=pb.PRODUCT_INTEGRATIONS,
                              connection_id=f"doomed-{{n}}", holder="doomed", ttl_seconds=30),
        metadata=(("authorization", "Bearer {token}"),), timeout=30)
    print(answer.lease.lease_id, flush=True)
sys.stdin.read()
"""


def test_a_killed_holders_seats_go_to_another_after_the_ttl_and_expire_once_each(
    make_service: Callable[..., Service],
    clock: FakeClock,
    serve_in_process: Callable[[Service], Client],
    sql: psycopg.Connection,
) -> None:
    first = make_service(clock, sweep_interval_seconds=0.05, **POOLS)
    second = make_service(clock, sweep_interval_seconds=0.05, **POOLS)
    bootstrap.start_projections(first)
    client = serve_in_process(first)
    account, _ = account_with_seats(client, 3)
    script = HOLDER.format(
        src=str(REPO / "src"),
        address=client.address,
        account=account,
        token=TOKENS["integrations"],
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    leases = [holder.stdout.readline().strip() for _ in range(3)]
    holder.kill()  # SIGKILL: no release, no goodbye
    holder.wait()
    assert refused(lambda: acquire(client, account))[1] == "NO_SEAT_AVAILABLE"

    clock.advance(seconds=30)  # the leases' expires_at
    taken = [acquire(client, account, holder="heir") for _ in range(3)]
    assert [t.seats_leased for t in taken] == [1, 2, 3]
    bootstrap.start_sweeper(first)
    bootstrap.start_sweeper(second)
    assert wait_for_expiries(sql, leases, 3) == {lease: 1 for lease in leases}


def wait_for_expiries(sql: psycopg.Connection, leases: list[str], count: int) -> dict[str, int]:
    """The SeatLeaseExpired events of `leases`, once `count` are recorded (the sweepers run on
    their own threads), and once more after another sweep period, to catch any second one."""
    deadline = time.monotonic() + WAIT
    query = (
        f"SELECT originator_id::text, count(*) FROM {EVENTS_TABLE}"
        " WHERE originator_id = ANY(%s) AND topic LIKE '%%SeatLeaseExpired' GROUP BY 1"
    )
    ids = [UUID(lease) for lease in leases]
    while sum(n for _, n in sql.execute(query, (ids,)).fetchall()) < count:
        assert time.monotonic() < deadline, "the sweepers did not record the expiries"
        time.sleep(0.05)
    time.sleep(0.2)  # a few more sweeps of both sweepers
    return {lease: n for lease, n in sql.execute(query, (ids,)).fetchall()}


def test_revoking_a_key_cuts_no_lease_marks_the_newest_and_frees_seats_one_by_one(
    api: Client, clock: FakeClock
) -> None:
    account, (_, three_seats) = account_with_seats(api, 2, 3)
    leases = []
    for _ in range(5):
        leases.append(acquire(api, account).lease.lease_id)
        clock.advance(seconds=1)
    allowance(api, account, revoke_by_ops(api, three_seats))
    assert refused(lambda: acquire(api, account)) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "NO_SEAT_AVAILABLE",
        "All 2 seats are in use",
    )
    renewed = renew(api, leases).leases
    assert [(r.renewed, r.over_allowance, r.lost) for r in renewed] == [
        (True, False, False),
        (True, False, False),
        (True, True, False),
        (True, True, False),
        (True, True, False),
    ]
    for lease_id in leases[2:]:
        release(api, lease_id)
    assert [x.lease_id for x in listed(api, account)] == leases[:2]
    assert refused(lambda: acquire(api, account))[1] == "NO_SEAT_AVAILABLE"
    release(api, leases[0])
    acquire(api, account)
    assert refused(lambda: acquire(api, account))[1] == "NO_SEAT_AVAILABLE"


def watch(client: Client, account: str) -> Iterator[pb.WatchSeatAllowanceResponse]:
    stream: Iterator[pb.WatchSeatAllowanceResponse] = client.entitlements.WatchSeatAllowance(
        pb.WatchSeatAllowanceRequest(account_id=account, product=INT),
        metadata=client.as_("integrations"),
        timeout=WAIT,
    )
    return stream


def test_a_watcher_sees_seats_leased_one_two_one_and_nothing_for_a_renewal(
    api: Client, clock: FakeClock
) -> None:
    account, _ = account_with_seats(api, 3)
    stream = watch(api, account)
    assert next(stream).allowance.seats_leased == 0
    first = acquire(api, account).lease.lease_id
    assert next(stream).allowance.seats_leased == 1
    acquire(api, account)
    assert next(stream).allowance.seats_leased == 2
    clock.advance(seconds=20)
    assert renew(api, [first]).leases[0].renewed
    release(api, first)
    after = next(stream).allowance  # the release's message: the renewal sent none
    assert (after.seats_leased, after.seats) == (1, 3)
    assert allowance(api, account, after.position).seats_leased == 1


def test_the_portal_lists_leases_and_may_not_take_one(api: Client) -> None:
    account, _ = account_with_seats(api, 1)
    lease = acquire(api, account).lease
    assert [x.lease_id for x in listed(api, account, role="portal")] == [lease.lease_id]
    request = pb.AcquireSeatRequest(account_id=account, product=INT, connection_id="c", holder="h")
    for role in ("portal", "auditor", "acme"):

        def call(role: str = role) -> object:
            return seats(api).AcquireSeat(request, metadata=api.as_(role), timeout=WAIT)

        assert refused(call)[0] is grpc.StatusCode.PERMISSION_DENIED


def test_malformed_seat_requests_name_every_bad_field_and_change_nothing(api: Client) -> None:
    account, _ = account_with_seats(api, 1)
    with pytest.raises(grpc.RpcError) as failure:
        seats(api).AcquireSeat(
            pb.AcquireSeatRequest(
                account_id=account,
                product=INT,
                connection_id="nul\x00" + "x" * 1_000_000,
                holder="",
                ttl_seconds=5,
            ),
            metadata=api.as_("integrations"),
            timeout=WAIT,
        )
    found = rich(failure.value)
    assert found.code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(found.violations) == {"connection_id", "holder", "ttl_seconds"}
    with pytest.raises(grpc.RpcError) as failure:
        renew(api, ["not-a-lease", str(UUID(int=1))] * 501)
    assert rich(failure.value).violations == {"lease_ids": "must name at most 1,000 leases"}
    with pytest.raises(grpc.RpcError) as failure:
        release(api, "\x00")
    assert set(rich(failure.value).violations) == {"lease_id"}
    assert listed(api, account) == []
    assert release(api, str(UUID(int=7))).released is False  # unknown: nothing to free


def test_an_account_without_a_subscription_is_told_so(api: Client) -> None:
    assert refused(lambda: acquire(api, unique("acct"))) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_ACTIVE_SUBSCRIPTION",
        "No active Integrations subscription",
    )


def allowance_as_of(client: Client, account: str, at: datetime) -> pb.SeatAllowance:
    request = pb.GetSeatAllowanceRequest(account_id=account, product=INT)
    request.as_of.FromDatetime(at)
    answer: pb.SeatAllowance = client.entitlements.GetSeatAllowance(
        request, metadata=client.as_("integrations"), timeout=WAIT
    )
    return answer


def test_as_of_answers_seats_leased_at_each_instant_from_the_events(
    api: Client, clock: FakeClock
) -> None:
    account, _ = account_with_seats(api, 3)
    first = acquire(api, account, ttl=60).lease.lease_id
    one = clock()
    two = clock.advance(seconds=5)
    acquire(api, account, ttl=10)
    clock.advance(seconds=5)
    release(api, first)
    after_release = clock.advance(seconds=1)
    clock.advance(seconds=30)  # the second lease is past its expires_at: nobody holds a seat
    answers = [allowance_as_of(api, account, t).seats_leased for t in (one, two, after_release)]
    assert answers == [1, 2, 1]
    assert allowance(api, account).seats_leased == 0


def test_a_cached_allowance_stops_counting_a_lease_at_its_expires_at(
    api: Client, clock: FakeClock
) -> None:
    account, _ = account_with_seats(api, 2)
    assert allowance(api, account).seats_leased == allowance(api, account).seats_leased == 0
    granted = acquire(api, account, ttl=10)
    assert allowance(api, account).seats_leased == 1  # this server forgot what it had cached
    assert allowance(api, account, granted.position).seats_leased == 1
    assert allowance(api, account).seats_leased == 1  # from the cache now
    clock.advance(seconds=10)
    assert allowance(api, account).seats_leased == 0  # no sweeper ran, no event was recorded


def test_metrics_count_grants_denials_and_the_leases_live_now(
    make_service: Callable[..., Service], clock: FakeClock, database_url: str
) -> None:
    service = make_service(clock, **POOLS)
    bootstrap.start_projections(service)
    server = server_for(service)
    server.start()
    client = Client(f"127.0.0.1:{server.port}")
    try:
        account, _ = account_with_seats(client, 1)
        assert server.metrics is not None
        before = scrape_port(server.metrics.port)
        lease = acquire(client, account).lease
        assert refused(lambda: acquire(client, account))[1] == "NO_SEAT_AVAILABLE"
        during = scrape_port(server.metrics.port)
        release(client, lease.lease_id)
        after = scrape_port(server.metrics.port)
    finally:
        client.close()
        server.stop(grace=1)
    denials = "license_svc_seat_denials_total"
    assert during[denials] - before[denials] == 1
    assert during["license_svc_seat_leases_live"] - before["license_svc_seat_leases_live"] == 1
    assert after["license_svc_seat_leases_live"] == before["license_svc_seat_leases_live"]
    with psycopg.connect(database_url) as conn:
        granted = conn.execute(
            f"SELECT count(*) FROM {EVENTS_TABLE} WHERE topic LIKE '%.SeatLeaseGranted'"
        ).fetchone()
    assert granted is not None
    assert during["license_svc_seat_leases_granted_total"] <= granted[0]
    assert after["license_svc_seat_leases_released_total"] >= 1


def scrape_port(port: int) -> dict[str, float]:
    """The unlabelled samples of a server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_seat_usage_shows_the_seats_sold_against_the_peak_of_leases_that_day(
    api: Client, clock: FakeClock
) -> None:
    account, _ = account_with_seats(api, 4)
    leases = []
    for _ in range(3):
        leases.append(acquire(api, account).lease.lease_id)
        clock.advance(seconds=1)
    for lease_id in leases[:2]:  # the day's peak was 3; 1 is held now
        position = release(api, lease_id).position
        clock.advance(seconds=1)
    assert allowance(api, account, position).seats_leased == 1  # the view has the leases' events
    api.keys.ListKeys(  # and the key catalog has caught up with them too
        pb.ListKeysRequest(min_position=position), metadata=api.as_("ops"), timeout=WAIT
    )

    def usage(role: str, **fields: str) -> pb.GetSeatUsageResponse:
        answer: pb.GetSeatUsageResponse = api.ops.GetSeatUsage(
            pb.GetSeatUsageRequest(account_id=account, **fields),
            metadata=api.as_(role),
            timeout=WAIT,
        )
        return answer

    today = clock().date().isoformat()
    days = [(d.date, d.seats_sold, d.peak_seats_leased) for d in usage("ops").days]
    assert days == [(today, 4, 3)]
    assert [d.account_id for d in usage("acme").days] == [account]
    assert usage("globex").days == []  # not its key
    assert refused(lambda: usage("globex", reseller_id="acme"))[0] is (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert refused(lambda: usage("ops", from_date="2026-01-01", to_date="2026-12-31"))[0] is (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_the_dashboard_shows_seats_sold_against_the_peak_leased(
    make_service: Callable[..., Service],
    clock: FakeClock,
    serve_in_process: Callable[[Service], Client],
) -> None:
    # The page lists the first rows of the week (by day, then account): on the suite's shared
    # day, the other tests' accounts may fill them. A day of this test's own, years after any
    # other test's keys end, makes this account the only one with seats sold on it.
    clock.set(datetime(2041, 1, 1, 12, tzinfo=UTC) + timedelta(days=random.randrange(3650)))
    service = make_service(clock, **POOLS)
    bootstrap.start_projections(service)
    client = serve_in_process(service)
    dashboard = start_dashboard(service, "127.0.0.1:0")
    try:
        account, _ = account_with_seats(client, 3)
        acquire(client, account)
        position = acquire(client, account).position
        allowance(client, account, position)
        client.keys.ListKeys(
            pb.ListKeysRequest(min_position=position), metadata=client.as_("ops"), timeout=WAIT
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{dashboard.port}/",
            headers={"Authorization": f"Bearer {TOKENS['acme']}"},
        )
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            page = answer.read().decode()
    finally:
        dashboard.stop()
    row = f"<td>{clock().date().isoformat()}</td><td>{account}</td>"
    assert f'{row}<td class="n">3</td><td class="n">2</td><td class="n">67%</td>' in page


def test_the_change_feed_carries_each_grant_and_release_with_seats_leased(api: Client) -> None:
    account, _ = account_with_seats(api, 2)
    start = allowance(api, account).position
    granted = acquire(api, account)
    released = release(api, granted.lease.lease_id)
    allowance(api, account, released.position)  # the view has both
    stream = api.entitlements.WatchSeatAllowance(
        pb.WatchSeatAllowanceRequest(after_position=start),
        metadata=api.as_("integrations"),
        timeout=WAIT,
    )
    mine = []
    for message in stream:
        if message.WhichOneof("item") == "caught_up":
            break
        if message.allowance.account_id == account:
            mine.append(message.allowance.position)
    stream.cancel()
    assert mine == [granted.position, released.position]  # a change row for each


def test_an_accounts_lease_history_is_stream_events_with_its_account_id(
    api: Client, clock: FakeClock
) -> None:
    account, _ = account_with_seats(api, 1)
    before = allowance(api, account).position
    lease = acquire(api, account).lease
    release(api, lease.lease_id)
    stream = api.audit.StreamEvents(
        pb.StreamEventsRequest(
            after_position=before,
            account_id=account,
            event_types=["SeatLeaseGranted", "SeatLeaseReleased", "SeatLeaseExpired"],
        ),
        metadata=api.as_("auditor"),
        timeout=WAIT,
    )
    history = []
    for message in stream:
        if message.WhichOneof("item") == "caught_up":
            break
        if message.WhichOneof("item") == "event":
            history.append((message.event.type, message.event.key_id))
    stream.cancel()
    assert history == [("SeatLeaseGranted", lease.lease_id), ("SeatLeaseReleased", lease.lease_id)]
