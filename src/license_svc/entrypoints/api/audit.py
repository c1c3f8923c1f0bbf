"""AuditService: a key's full history; the stream of every event.

`StreamEvents` follows the store's log (`license_svc.reads.feed`): history in batches, one
`caught_up`, then live appends; each event once, in position order. While a filter skips events it
sends a `checkpoint` at least every CHECKPOINT_EVERY skipped events and at least every
CHECKPOINT_SECONDS, so a consumer can save its progress. Resuming with the last position seen (an
event's or a checkpoint's) gives exactly the rest: positions are the store's, not the server's, so
that holds across servers and restarts."""

from __future__ import annotations

import time
from typing import Any

import grpc
from eventsourcing.persistence import Notification

from license_svc.access.auth import PermissionDenied, Principal, Role, caller
from license_svc.access.fields import Fields
from license_svc.adapters.application import HistoryEntry
from license_svc.keys.app import LicensingApp
from license_svc.reads.events import EVENT_TOPICS, EventFilter, KeyFacts, aggregate_type

from . import convert
from .gen import licensing_pb2 as pb
from .gen import licensing_pb2_grpc as pb_grpc
from .keys import key_id_from
from .streaming import Streams

CHECKPOINT_EVERY = 1_000
CHECKPOINT_SECONDS = 1.0


class AuditServicer(pb_grpc.AuditServiceServicer):
    def __init__(self, app: LicensingApp, streams: Streams) -> None:
        self._app = app
        self._streams = streams

    def GetKeyHistory(
        self, request: pb.GetKeyHistoryRequest, context: grpc.ServicerContext
    ) -> pb.GetKeyHistoryResponse:
        if request.subscription_id:  # a plan bought online, by the provider's subscription id
            check = Fields()
            subscription_id = check.identifier(request.subscription_id, "subscription_id")
            check.done()
            key_id = self._app.identity.plan_id(subscription_id)
        else:
            key_id = key_id_from(self._app, request.key_id, request.code)
        return pb.GetKeyHistoryResponse(
            key_id=str(key_id),
            events=[_event(entry, str(key_id)) for entry in self._app.history(key_id)],
        )

    async def StreamEvents(self, request: pb.StreamEventsRequest, context: Any) -> None:  # type: ignore[override]
        wanted = _filter(request)
        _scope(caller(), wanted)
        with self._streams.slot(caller()):
            await _Stream(self._app, self._streams, wanted, context).run(request)


class _Stream:
    def __init__(self, app: LicensingApp, streams: Streams, wanted: EventFilter, context: Any):
        self._app = app
        self._feed = streams.feed
        self._send = streams.sender(context)
        self._wanted = wanted
        self._facts = KeyFacts(app.mapper.to_domain_event, streams.facts)
        self._skipped = 0
        self._said_at = time.monotonic()
        self._said = 0  # the last position sent (event or checkpoint)

    async def run(self, request: pb.StreamEventsRequest) -> None:
        limit, sent = request.limit, 0
        self._said = request.after_position
        async for step in self._feed.walk(request.after_position, request.follow):
            events = step.events
            if self._wanted.needs_facts and events:
                resellers = bool(self._wanted.reseller_id)
                await self._facts.learn(events, self._feed, step.memo, resellers)
            done = -1  # the index of the last event sent or skipped
            for i in self._facts.matching(self._wanted, events) if events else ():
                await self._skip(events, done, i)
                await self._say(pb.StreamEventsResponse(event=self._event(events[i])), events[i].id)
                done = i
                sent += 1
                if limit and sent >= limit:
                    return
            await self._skip(events, done, len(events))
            if step.caught_up:
                if step.upto > self._said and self._skipped:
                    await self._checkpoint(step.upto)
                caught_up = pb.CaughtUp(position=step.upto)
                await self._say(pb.StreamEventsResponse(caught_up=caught_up), step.upto)
            elif step.upto > self._said and time.monotonic() - self._said_at >= CHECKPOINT_SECONDS:
                await self._checkpoint(step.upto)

    async def _skip(self, events: list[Notification], done: int, upto: int) -> None:
        """Skip the events after index `done` and before `upto`, with a checkpoint at every
        CHECKPOINT_EVERY-th event skipped since the last message."""
        while self._skipped + (upto - done - 1) >= CHECKPOINT_EVERY:
            done += CHECKPOINT_EVERY - self._skipped
            await self._checkpoint(events[done].id)  # resets the count
        self._skipped += upto - done - 1

    async def _checkpoint(self, position: int) -> None:
        checkpoint = pb.Checkpoint(position=position)
        await self._say(pb.StreamEventsResponse(checkpoint=checkpoint), position)

    async def _say(self, response: pb.StreamEventsResponse, position: int) -> None:
        await self._send(response, position)
        self._skipped = 0
        self._said = max(self._said, position)
        self._said_at = time.monotonic()

    def _event(self, event: Notification) -> pb.StoredEvent:
        entry = self._app.entry(event, event.id)
        return _event(entry, str(event.originator_id), aggregate_type(event.topic))


def _event(entry: HistoryEntry, key_id: str, aggregate: str = "") -> pb.StoredEvent:
    return pb.StoredEvent(
        type=entry.type,
        version=entry.version,
        recorded_at=convert.timestamp(entry.recorded_at),
        position=entry.position,
        payload=convert.payload(entry.payload),
        payload_json=convert.payload_json(entry.payload),
        key_id=key_id,
        aggregate_type=aggregate,
    )


def _scope(principal: Principal, wanted: EventFilter) -> None:
    """A reseller streams its own keys' events only (rules §14): its own reseller_id filter is
    required, and further filters may only narrow it."""
    if principal.role is Role.RESELLER and wanted.reseller_id != principal.reseller_id:
        raise PermissionDenied("A reseller may stream only with its own reseller_id filter")


def _filter(request: pb.StreamEventsRequest) -> EventFilter:
    check = Fields()
    if request.after_position < 0:
        check.add("after_position", "must not be negative")
    if request.limit < 0:
        check.add("limit", "must not be negative (0 = no limit)")
    topics: set[str] = set()
    known = ", ".join(EVENT_TOPICS)
    for i, name in enumerate(request.event_types):
        before = len(check.violations)
        name = check.identifier(name, f"event_types[{i}]")
        if name in EVENT_TOPICS:
            topics |= EVENT_TOPICS[name]
        elif len(check.violations) == before:
            check.add(f"event_types[{i}]", f"unknown event type {name!r} (one of {known})")
    key_id = check.key_id(request.key_id, required=False)
    reseller = check.identifier(request.reseller_id, "reseller_id", required=False)
    account = check.identifier(request.account_id, "account_id", required=False)
    check.done()
    return EventFilter(frozenset(topics), key_id, reseller, account)
