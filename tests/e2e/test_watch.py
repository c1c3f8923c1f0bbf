"""WatchSeatAllowance over a real channel: one account's allowance pushed at every change (the end
of a period included, by the injected clock, with no sweeper), many watchers of one account, and
the resumable change feed of every account."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import grpc
import pytest

from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc
from tests.e2e.test_entitlements import activate_new_key, allowance, revoke_by_ops
from tests.helpers import rich, unique
from tests.support import Client, FakeClock

WAIT = 30.0  # a stream's deadline: a message that never comes fails the test, it never hangs


@pytest.fixture
def api(serve_projected: Callable[..., tuple[Client, Service]]) -> Client:
    client, _ = serve_projected(max_streams=600, stream_share_percent=100)  # one caller fans out
    return client


def watch(client: Client, role: str = "integrations", **fields: object) -> Iterator[object]:
    fields.setdefault("product", pb.PRODUCT_INTEGRATIONS)
    request = pb.WatchSeatAllowanceRequest(**fields)  # type: ignore[arg-type]
    stream: Iterator[object] = client.entitlements.WatchSeatAllowance(
        request, metadata=client.as_(role), timeout=WAIT
    )
    return stream


def allowance_of(stream: Iterator[object]) -> pb.SeatAllowance:
    message = next(stream)
    assert isinstance(message, pb.WatchSeatAllowanceResponse)
    assert message.WhichOneof("item") == "allowance", message
    return message.allowance


def key_id_of(client: Client, account: str, seats: int, months: int) -> tuple[str, int]:
    issued = client.issue(seats=seats, period_months=months)
    done = client.activate(issued.keys[0].code, account)
    return done.entitlement.key_id, done.position


def test_a_watcher_gets_the_allowance_then_exactly_one_update_per_change(
    api: Client, clock: FakeClock
) -> None:
    account = unique("acct")
    stream = watch(api, account_id=account, connections_in_use=1)
    first = allowance_of(stream)
    assert (first.seats, first.active, first.can_create_connection) == (0, False, False)

    growth, position = key_id_of(api, account, 3, 12)
    activated = allowance_of(stream)
    assert (activated.seats, activated.active, activated.remaining) == (3, True, 2)
    assert activated.position >= position

    position = activate_new_key(api, account, pb.TIER_STARTER, 2, 1)
    stacked = allowance_of(stream)
    assert (stacked.seats, stacked.tier) == (5, pb.TIER_GROWTH)
    assert stacked.position >= position

    position = revoke_by_ops(api, growth)
    revoked = allowance_of(stream)
    assert (revoked.seats, revoked.tier, revoked.position >= position) == (2, pb.TIER_STARTER, True)

    clock.advance(days=32)  # past the Starter month; no sweeper runs in this process
    ended = allowance_of(stream)
    assert (ended.seats, ended.active, ended.can_create_connection) == (0, False, False)
    assert not ended.HasField("valid_until")

    activate_new_key(api, account, pb.TIER_SCALE, 1, 12)  # nothing came in between
    assert allowance_of(stream).seats == 1
    stream.cancel()  # type: ignore[attr-defined]


def test_five_hundred_watchers_of_one_account_all_receive_every_update(api: Client) -> None:
    account = unique("acct")
    watchers = 500

    async def run() -> list[list[int]]:
        async with grpc.aio.insecure_channel(api.address) as channel:
            stub = pb_grpc.EntitlementServiceStub(channel)
            request = pb.WatchSeatAllowanceRequest(
                account_id=account, product=pb.PRODUCT_INTEGRATIONS
            )
            calls = [
                stub.WatchSeatAllowance(request, metadata=api.as_("portal"), timeout=WAIT * 2)
                for _ in range(watchers)
            ]
            seen: list[list[int]] = [[] for _ in calls]

            async def take(i: int) -> None:
                message = await calls[i].read()
                seen[i].append(message.allowance.seats)

            await asyncio.gather(*(take(i) for i in range(watchers)))  # everyone has the first
            for seats, months in ((3, 12), (2, 6)):
                await asyncio.to_thread(
                    activate_new_key, api, account, pb.TIER_GROWTH, seats, months
                )
                await asyncio.gather(*(take(i) for i in range(watchers)))
            for call in calls:
                call.cancel()
            return seen

    seen = asyncio.run(run())
    assert all(s == [0, 3, 5] for s in seen), {tuple(s) for s in seen}


def feed_until_caught_up(client: Client, after: int) -> list[tuple[int, str, int]]:
    """(position, account, seats) of every change after `after`, up to the caught_up."""
    stream = watch(client, after_position=after, product=pb.PRODUCT_UNSPECIFIED)
    changes = []
    for message in stream:
        assert isinstance(message, pb.WatchSeatAllowanceResponse)
        if message.WhichOneof("item") == "caught_up":
            break
        if message.WhichOneof("item") == "allowance":
            a = message.allowance
            changes.append((a.position, a.account_id, a.seats))
    stream.cancel()  # type: ignore[attr-defined]
    return changes


def test_the_change_feed_resumed_mid_way_yields_exactly_the_remaining_changes(api: Client) -> None:
    accounts = [unique("acct") for _ in range(3)]
    positions = []
    keys = []
    for i in range(6):
        key_id, position = key_id_of(api, accounts[i % 3], i + 1, 12)
        keys.append(key_id)
        positions.append(position)
    positions.append(revoke_by_ops(api, keys[0]))
    allowance(api, accounts[0], position=positions[-1])  # the view has every change
    after = positions[0] - 1

    whole = feed_until_caught_up(api, after)
    mine = [c for c in whole if c[1] in accounts]
    assert [c[0] for c in mine] == positions  # every change once, in order
    middle = whole.index(mine[3])
    assert feed_until_caught_up(api, mine[3][0]) == whole[middle + 1 :]

    # Live: a stream that has caught up gets the next change as it happens.
    stream = watch(api, role="ops", after_position=whole[-1][0], product=pb.PRODUCT_UNSPECIFIED)
    kinds = []
    for message in stream:
        assert isinstance(message, pb.WatchSeatAllowanceResponse)
        kinds.append(message.WhichOneof("item"))
        if kinds == ["caught_up"]:
            _, live_position = key_id_of(api, accounts[0], 4, 12)
        elif message.WhichOneof("item") == "allowance":
            assert (message.allowance.position, message.allowance.account_id) == (
                live_position,
                accounts[0],
            )
            break
    stream.cancel()  # type: ignore[attr-defined]


def test_the_portal_may_watch_one_account_but_not_every_account(api: Client) -> None:
    with pytest.raises(grpc.RpcError) as denied:
        next(watch(api, role="portal"))
    assert rich(denied.value).code == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as bad:
        next(watch(api, account_id=unique("acct"), connections_in_use=-1))
    assert rich(bad.value).code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.slow
def test_a_burst_of_watchers_past_grpcs_pending_call_queue_all_get_their_allowance(
    make_service: Callable[..., Service],
    clock: FakeClock,
    serve_in_process: Callable[[Service], Client],
) -> None:
    """gRPC core cancels calls waiting to be taken in past 3,000 at once by default: every
    Integrations replica reconnecting its watchers after a restart would see CANCELLED, before
    the server's own stream cap (which says RESOURCE_EXHAUSTED with a retry delay) had a say."""
    watchers = 3_500
    client = serve_in_process(make_service(clock, max_streams=watchers, stream_share_percent=100))
    account = unique("acct")

    async def run() -> list[str]:
        options = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.aio.insecure_channel(client.address, options=options) for _ in range(5)]
        request = pb.WatchSeatAllowanceRequest(account_id=account, product=pb.PRODUCT_INTEGRATIONS)
        calls = [
            pb_grpc.EntitlementServiceStub(channels[i % 5]).WatchSeatAllowance(
                request, metadata=client.as_("integrations"), timeout=WAIT * 4
            )
            for i in range(watchers)
        ]

        async def first(call: grpc.aio.UnaryStreamCall) -> str:  # type: ignore[type-arg]
            try:
                message = await call.read()
                assert isinstance(message, pb.WatchSeatAllowanceResponse), message
                return message.WhichOneof("item") or "empty"
            except grpc.aio.AioRpcError as error:
                return error.code().name
            finally:
                call.cancel()

        try:
            return await asyncio.gather(*(first(call) for call in calls))
        finally:
            for channel in channels:
                await channel.close(None)

    outcomes = asyncio.run(run())
    assert outcomes.count("allowance") == watchers, {o: outcomes.count(o) for o in set(outcomes)}
