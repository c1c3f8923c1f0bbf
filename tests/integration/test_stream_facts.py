"""StreamEvents' key facts against real Postgres: a filtered stream holds the facts of one
batch, the process keeps the final facts of at most its bound of keys for every stream, and
the filter still lets through exactly the account's events."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import Notification

from license_svc.bootstrap import Service
from license_svc.domain.tiers import Product, Tier
from license_svc.keys.app import IssueKeys
from license_svc.reads.events import EventFilter, FactCache, KeyFacts
from license_svc.reads.feed import LogFeed
from tests.helpers import unique


def issue(service: Service, count: int) -> list[UUID]:
    batch = service.app.issue_keys(
        IssueKeys("acme", Product.INTEGRATIONS, Tier.STARTER, 1, 12, count, unique("req"))
    )
    return [key.key_id for key in batch.keys]


async def stream(
    feed: LogFeed, facts: KeyFacts, wanted: EventFilter, after: int, seen: list[int]
) -> list[int]:
    """The positions the filter lets through; `seen` gets how many keys the stream held."""
    matched = []
    async for step in feed.walk(after, follow=False):
        if step.events:
            await facts.learn(step.events, feed, step.memo)
            seen.append(len(facts.batch))
            matched += [step.events[i].id for i in facts.matching(wanted, step.events)]
    return matched


def test_streams_from_the_start_hold_one_batch_of_facts_and_share_one_bounded_cache(
    service: Service,
) -> None:
    feed = LogFeed(service.feed.follower, service.feed.reader, service.feed.executor, batch=100)
    before = feed.reader.head()
    keys = issue(service, 600) + issue(service, 600)
    account = unique("acct-mine")
    mine = {keys[i]: service.app.activate(keys[i], account).position for i in range(0, 1200, 97)}
    for key_id in keys[1:400:3]:
        if key_id not in mine:
            service.app.activate(key_id, unique("acct"))
    for key_id in list(mine)[:3]:
        service.app.revoke(key_id, reason="refund", revoked_by="ops", by_ops=True)
    shared = FactCache(bound=150)
    wanted = EventFilter(account_id=account)
    held: list[list[int]] = [[], [], []]

    async def three_streams() -> list[list[int]]:
        streams = [
            stream(feed, KeyFacts(service.app.mapper.to_domain_event, shared), wanted, before, h)
            for h in held
        ]
        return list(await asyncio.gather(*streams))

    results = asyncio.run(three_streams())

    expected = sorted(
        e.id
        for e in feed.reader.after(before, 10_000)
        if e.originator_id in mine and e.id >= mine[UUID(str(e.originator_id))]
    )
    assert len(expected) == len(mine) + 3
    assert results == [expected] * 3
    assert max(max(h) for h in held) <= 100  # one batch of keys per stream
    assert len(shared) <= 150


def test_streams_walking_together_read_each_batch_once_and_learn_its_facts_once(
    service: Service,
) -> None:
    """Twenty filtered streams from the same position: one read of the store per batch and one
    lookup of key facts per batch, shared; each stream still gets exactly its own events."""
    feed = LogFeed(service.feed.follower, service.feed.reader, service.feed.executor, batch=100)
    before = feed.reader.head()
    keys = issue(service, 500)
    accounts = [unique("acct-a"), unique("acct-b")]
    activated: dict[str, list[int]] = {account: [] for account in accounts}
    for i, key_id in enumerate(keys[::7]):
        activated[accounts[i % 2]].append(service.app.activate(key_id, accounts[i % 2]).position)
    reads: list[int] = []
    lookups: list[int] = []
    after, first_events = feed.reader.after, feed.reader.first_events

    def counted_after(position: int, limit: int) -> list[Notification]:
        reads.append(position)
        return after(position, limit)

    def counted_first_events(key_ids: Sequence[UUID]) -> list[Notification]:
        lookups.append(len(key_ids))
        return first_events(key_ids)

    class Reader:  # the feed's reader, counted
        head = feed.reader.head
        after = staticmethod(counted_after)
        first_events = staticmethod(counted_first_events)

    feed.reader = Reader()  # type: ignore[assignment]
    shared = FactCache(bound=0)  # nothing cached across batches: every lookup is the store's
    held: list[list[int]] = [[] for _ in range(20)]

    async def twenty_streams() -> list[list[int]]:
        streams = [
            stream(
                feed,
                KeyFacts(service.app.mapper.to_domain_event, shared),
                EventFilter(account_id=accounts[i % 2]),
                before,
                held[i],
            )
            for i in range(20)
        ]
        return list(await asyncio.gather(*streams))

    results = asyncio.run(twenty_streams())

    stored = after(before, 10_000)
    batches = -(-len(stored) // 100)
    last = max(reads)  # the log's end: a partial batch, never kept, may be read again
    full = [position for position in reads if position != last]
    assert len(full) == len(set(full)) == batches - 1  # each full batch read once
    assert len(lookups) <= len(reads)  # each batch's facts learned once per read
    for i, matched in enumerate(results):
        assert matched == activated[accounts[i % 2]]
    assert len(feed.shared) <= feed.shared.bound
