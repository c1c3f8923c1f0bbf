"""StreamEvents' key facts against real Postgres: a filtered stream holds the facts of one
batch, the process keeps the final facts of at most its bound of keys for every stream, and
the filter still lets through exactly the account's events."""

from __future__ import annotations

import asyncio
from uuid import UUID

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
            await facts.learn(step.events, feed)
            seen.append(len(facts.batch))
            matched += [e.id for e in step.events if facts.matches(wanted, e)]
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
