"""AuditService.StreamEvents through a real server process: history in order, one caught_up,
live appends, resumption (also across a SIGKILL), filters with checkpoints, auth and the cap."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import EVENTS_TABLE, rich
from tests.support import Client, ServerProcess


def open_stream(client: Client, role: str = "auditor", **fields: Any) -> Any:
    """The call: an iterator of responses that can also be cancelled."""
    request = pb.StreamEventsRequest(**fields)
    return client.audit.StreamEvents(request, metadata=Client.as_(role), timeout=120)


def head(sql: psycopg.Connection) -> int:
    row = sql.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}").fetchone()
    assert row is not None
    return int(row[0])


def store_positions(sql: psycopg.Connection, after: int, upto: int) -> list[int]:
    rows = sql.execute(
        f"SELECT notification_id FROM {EVENTS_TABLE}"
        " WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id",
        (after, upto),
    ).fetchall()
    return [int(r[0]) for r in rows]


def read_until(
    items: Iterator[pb.StreamEventsResponse], done: Callable[[pb.StreamEventsResponse], bool]
) -> list[pb.StreamEventsResponse]:
    seen = []
    for item in items:
        seen.append(item)
        if done(item):
            return seen
    raise AssertionError("the stream ended early")


def positions(items: list[pb.StreamEventsResponse]) -> list[int]:
    return [i.event.position for i in items if i.WhichOneof("item") == "event"]


def last_position(items: list[pb.StreamEventsResponse], after: int) -> int:
    for item in reversed(items):
        kind = item.WhichOneof("item")
        if kind is not None:
            return int(getattr(item, kind).position)
    return after


def test_a_stream_from_zero_sends_history_in_order_then_one_caught_up_then_live_events(
    client: Client, sql: psycopg.Connection
) -> None:
    client.issue(3)
    before = head(sql)
    call = open_stream(client, after_position=0, follow=True)
    history = read_until(call, lambda i: i.WhichOneof("item") == "caught_up")
    caught_up = history[-1].caught_up.position
    assert caught_up >= before
    assert positions(history) == store_positions(sql, 0, caught_up)
    assert [i.WhichOneof("item") for i in history].count("caught_up") == 1

    issued = client.issue(2)
    client.activate(issued.keys[0].code, "acct-stream-live")
    ours = {key.key_id for key in issued.keys}
    live: list[pb.StoredEvent] = []
    for event in events_of(call):  # every event, ours among them (other tests may write too)
        live.append(event)
        if sum(e.key_id in ours for e in live) == 3:
            break
    call.cancel()
    assert [e.position for e in live] == store_positions(sql, caught_up, live[-1].position)
    mine = [e for e in live if e.key_id in ours]
    assert [e.type for e in mine] == ["KeyIssued", "KeyIssued", "KeyActivated"]
    assert "code" not in mine[0].payload  # payloads never hold a plaintext code


def events_of(items: Iterator[pb.StreamEventsResponse]) -> Iterator[pb.StoredEvent]:
    for item in items:
        if item.WhichOneof("item") == "event":
            yield item.event


def test_three_disconnects_at_random_moments_each_resumed_lose_and_repeat_nothing(
    client: Client, sql: psycopg.Connection
) -> None:
    start = head(sql)
    writer_done = threading.Event()

    def write() -> None:
        for _ in range(12):
            issued = client.issue(5)
            client.activate(issued.keys[0].code, "acct-stream-resume")
        writer_done.set()

    writer = threading.Thread(target=write)
    writer.start()
    got: list[int] = []
    after = start
    rng = random.Random()
    for _ in range(3):
        call = open_stream(client, after_position=after, follow=True)
        # At most 20 each: the three together never ask for more than the 72 events written
        # (asking for more waited for ever on a stream with nothing left to send: a 4 % hang).
        wanted = rng.randint(1, 20)
        items: list[pb.StreamEventsResponse] = []
        for item in call:
            items.append(item)
            if len(items) >= wanted:
                break
        call.cancel()
        got += positions(items)
        after = last_position(items, after)
    writer.join()
    final = head(sql)
    call = open_stream(client, after_position=after, follow=True)
    rest = read_until(call, lambda i: last_position([i], 0) >= final)
    call.cancel()
    got += positions(rest)
    assert got == store_positions(sql, start, final)
    assert writer_done.is_set()


def test_a_resumed_stream_gets_exactly_the_rest_across_a_server_sigkill_and_restart(
    database_url: str, tmp_path: Path, sql: psycopg.Connection
) -> None:
    first = ServerProcess(database_url, tmp_path / "first.log")
    try:
        start = head(sql)
        first.client.issue(20)
        call = open_stream(first.client, after_position=start, follow=True)
        items = [next(call) for _ in range(7)]
        first.process.kill()  # SIGKILL: no goodbye
        with pytest.raises(grpc.RpcError):
            for _ in call:
                pass
    finally:
        first.stop()
    second = ServerProcess(database_url, tmp_path / "second.log")
    try:
        second.client.issue(5)
        final = head(sql)
        after = last_position(items, start)
        call = open_stream(second.client, after_position=after, follow=False)
        rest = list(call)
    finally:
        second.stop()
    assert positions(items) + positions(rest) == store_positions(sql, start, final)


def test_a_filtered_stream_sends_the_matches_and_checkpoints_rising_to_the_head(
    client: Client, sql: psycopg.Connection
) -> None:
    start = head(sql)
    batch = client.issue(2000)
    for key in batch.keys[:3]:
        client.keys.RevokeKey(
            pb.RevokeKeyRequest(key_id=key.key_id, reason="test"),
            metadata=Client.as_("acme"),
            timeout=10,
        )
    client.issue(3000)
    final = head(sql)
    items = list(open_stream(client, after_position=start, event_types=["KeyRevoked"]))
    events = [i.event for i in items if i.WhichOneof("item") == "event"]
    assert [e.type for e in events] == ["KeyRevoked"] * 3
    assert [e.key_id for e in events] == [k.key_id for k in batch.keys[:3]]
    checkpoints = [i.checkpoint.position for i in items if i.WhichOneof("item") == "checkpoint"]
    assert len(checkpoints) >= 5  # 5,000 skipped events, one at least every 1,000
    assert checkpoints == sorted(set(checkpoints))
    assert checkpoints[-1] == final
    assert items[-1].caught_up.position == final


@pytest.mark.parametrize("role", ["portal", "integrations", "acme"])
def test_only_auditors_and_ops_may_stream_events(client: Client, role: str) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        next(open_stream(client, role=role))
    assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_an_unknown_event_type_or_a_bad_key_id_is_invalid_argument_with_field_violations(
    client: Client,
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        next(open_stream(client, role="ops", event_types=["KeyExploded"], key_id="nope"))
    error = rich(failure.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(error.violations) == {"event_types[0]", "key_id"}


def test_past_the_cap_a_new_stream_is_refused_with_retry_info(
    make_service: Callable[..., Service], serve_in_process: Callable[[Service], Client]
) -> None:
    service = make_service(max_streams=1)
    client = serve_in_process(service)
    # From the head: the slots are the point, not the suite's whole history.
    holding = open_stream(client, follow=True, after_position=service.feed.reader.head(), limit=0)
    read_until(holding, lambda i: i.WhichOneof("item") == "caught_up")
    with pytest.raises(grpc.RpcError) as failure:
        next(open_stream(client, follow=True))
    holding.cancel()
    error = rich(failure.value)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "TOO_MANY_STREAMS"
    assert error.retry_delay is not None


def test_one_caller_holds_at_most_its_share_of_the_slots_while_others_still_open_theirs(
    make_service: Callable[..., Service], serve_in_process: Callable[[Service], Client]
) -> None:
    service = make_service(max_streams=4, stream_share_percent=50)
    client = serve_in_process(service)
    head = service.feed.reader.head()  # the slots are the point, not the suite's history
    held = []
    for _ in range(2):
        held.append(open_stream(client, follow=True, after_position=head))
        read_until(held[-1], lambda i: i.WhichOneof("item") == "caught_up")
    with pytest.raises(grpc.RpcError) as failure:
        next(open_stream(client, follow=True))
    for _ in range(2):
        held.append(open_stream(client, "ops", follow=True, after_position=head))
        read_until(held[-1], lambda i: i.WhichOneof("item") == "caught_up")
    for call in held:
        call.cancel()
    error = rich(failure.value)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "TOO_MANY_STREAMS"
    assert "for one caller" in (failure.value.details() or "")


def resume_after_of(error: grpc.RpcError) -> int:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return int(info.metadata["resume_after"])
    raise AssertionError("no ErrorInfo")


@pytest.mark.slow
def test_a_reader_that_stops_reading_is_ended_with_the_position_to_resume_after(
    database_url: str, tmp_path: Path, sql: psycopg.Connection
) -> None:
    """Real time passes here (the stall limit is a wall-clock bound): the server's log says
    when the stream was ended, so the test waits for that line, never for a fixed time."""
    server = ServerProcess(
        database_url, tmp_path / "server.log", LICENSE_SVC_STREAM_STALL_SECONDS="1"
    )
    try:
        start = head(sql)
        call = open_stream(server.client, after_position=start, follow=True)
        read_until(call, lambda i: i.WhichOneof("item") == "caught_up")
        server.client.issue(10_000)  # far more than the transport buffers: the writes stall
        server.client.issue(10_000)
        deadline = time.monotonic() + 60
        while "CONSUMER_TOO_SLOW" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        got: list[int] = []
        with pytest.raises(grpc.RpcError) as ended:
            for item in call:
                if item.WhichOneof("item") == "event":
                    got.append(item.event.position)
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        resume_after = resume_after_of(ended.value)
        assert got and got[-1] == resume_after
        final = head(sql)
        rest = positions(list(open_stream(server.client, after_position=resume_after)))
        assert got + rest == store_positions(sql, start, final)
    finally:
        server.stop()
