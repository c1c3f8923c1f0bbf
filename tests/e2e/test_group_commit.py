"""Group commit through two real server processes: 64 activations at once, some racing for one
key and some repeating a request, each answered as it would have been alone; and a SIGKILL in
the middle of the writes leaves every activation stored whole (and acknowledged) or not at all.
"""

from __future__ import annotations

import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import EVENTS_TABLE, rich, unique
from tests.support import Client, ServerProcess
from tests.views_support import SMALL_POOLS

CONCURRENCY = 64
RACED_KEYS, RACERS = 8, 4  # 32 activations: four accounts for each of eight keys
REPEATED_KEYS = 16  # 32 activations: each key's account asks twice


@dataclass(frozen=True)
class Answer:
    code: str
    account: str
    status: str  # "OK" or the error's reason
    position: int = 0
    already_active: bool = False


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two replicas; the first also keeps the views (for the `min_position` reads)."""
    first = ServerProcess(
        database_url, tmp_path / "first.log", LICENSE_SVC_RUN_PROJECTIONS="1", **SMALL_POOLS
    )
    try:
        second = ServerProcess(database_url, tmp_path / "second.log", **SMALL_POOLS)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def activate_at_once(jobs: list[tuple[Client, str, str]]) -> list[Answer]:
    """Every job (replica, code, account) on a thread of its own, released together."""
    start = threading.Barrier(len(jobs))

    def run(job: tuple[Client, str, str]) -> Answer:
        client, code, account = job
        start.wait(timeout=60)
        try:
            answer = client.activate(code, account, session=unique("sess"))
        except grpc.RpcError as error:
            return Answer(code, account, rich(error).reason or rich(error).code.name)
        return Answer(code, account, "OK", answer.position, answer.already_active)

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def activations_stored(sql: psycopg.Connection, key_ids: list[str]) -> dict[str, list[int]]:
    rows = sql.execute(
        f"SELECT originator_id::text, notification_id FROM {EVENTS_TABLE}"
        " WHERE originator_id = ANY(%s::uuid[]) AND topic LIKE %s ORDER BY notification_id",
        (key_ids, "%KeyActivated"),
    ).fetchall()
    stored: dict[str, list[int]] = {}
    for key_id, position in rows:
        stored.setdefault(key_id, []).append(int(position))
    return stored


def head(sql: psycopg.Connection) -> int:
    row = sql.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}").fetchone()
    assert row is not None
    return int(row[0])


def streamed_positions(client: Client, after: int, upto: int) -> list[int]:
    call = client.audit.StreamEvents(
        pb.StreamEventsRequest(after_position=after, follow=True),
        metadata=Client.as_("auditor"),
        timeout=120,
    )
    seen: list[int] = []
    try:
        for item in call:
            if item.WhichOneof("item") == "event":
                seen.append(item.event.position)
                if item.event.position >= upto:
                    return seen
    finally:
        call.cancel()
    raise AssertionError("the stream ended early")


def saves_per_group(server: ServerProcess) -> float:
    """`license_svc_append_grouped_total / license_svc_append_groups_total` of a replica."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(answer.read().decode())
            for sample in family.samples
        }
    return samples["license_svc_append_grouped_total"] / samples["license_svc_append_groups_total"]


def test_64_activations_at_once_on_two_replicas_are_each_answered_as_if_alone(
    servers: tuple[ServerProcess, ServerProcess], sql: psycopg.Connection
) -> None:
    replicas = first, second = servers[0].client, servers[1].client
    raced = first.issue(RACED_KEYS).keys
    repeated = second.issue(REPEATED_KEYS).keys
    before = head(sql)
    jobs: list[tuple[Client, str, str]] = []
    for key in raced:
        jobs += [(replicas[i % 2], key.code, unique("racer")) for i in range(RACERS)]
    for i, key in enumerate(repeated):
        account = unique("again")
        jobs += [(first, key.code, account), (second, key.code, account)]
        jobs = jobs if i % 2 else [*jobs[:-2], jobs[-1], jobs[-2]]
    assert len(jobs) == CONCURRENCY

    answers = activate_at_once(jobs)

    by_code: dict[str, list[Answer]] = {}
    for answer in answers:
        by_code.setdefault(answer.code, []).append(answer)
    for key in raced:
        tally = Counter(a.status for a in by_code[key.code])
        assert tally == {"OK": 1, "KEY_NOT_AVAILABLE": RACERS - 1}, tally
    for key in repeated:
        once, twice = sorted(by_code[key.code], key=lambda a: a.already_active)
        assert (once.status, twice.status) == ("OK", "OK")
        assert (once.already_active, twice.already_active) == (False, True)
        assert once.position == twice.position
    new = [a for a in answers if a.status == "OK" and not a.already_active]
    stored = activations_stored(sql, [k.key_id for k in [*raced, *repeated]])
    code_to_id = {k.code: k.key_id for k in [*raced, *repeated]}
    assert {code_to_id[a.code]: [a.position] for a in new} == stored  # one each, its own
    assert len({a.position for a in new}) == len(new)

    upto = head(sql)
    streamed = streamed_positions(second, before, upto)
    in_store = [
        int(r[0])
        for r in sql.execute(
            f"SELECT notification_id FROM {EVENTS_TABLE} WHERE notification_id > %s"
            " AND notification_id <= %s ORDER BY notification_id",
            (before, upto),
        ).fetchall()
    ]
    assert streamed[: len(in_store)] == in_store  # in order, each exactly once

    for answer in new:
        seen = second.entitlements.GetSeatAllowance(
            pb.GetSeatAllowanceRequest(
                account_id=answer.account,
                product=pb.PRODUCT_INTEGRATIONS,
                min_position=answer.position,
            ),
            metadata=Client.as_("integrations"),
            timeout=30,
        )
        assert (seen.seats, seen.position >= answer.position) == (3, True)
    # The saves did share transactions (else this proved nothing about group commit).
    assert max(saves_per_group(server) for server in servers) > 1


@pytest.mark.slow
def test_a_replica_killed_in_the_middle_of_its_writes_leaves_each_activation_whole_or_absent(
    database_url: str, tmp_path: Path, sql: psycopg.Connection
) -> None:
    server = ServerProcess(database_url, tmp_path / "killed.log", **SMALL_POOLS)
    keys = server.client.issue(400).keys
    acknowledged: list[Answer] = []
    attempted: list[tuple[str, str]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def activate_until_killed(slot: int) -> Callable[[], None]:
        def run() -> None:
            for key in keys[slot::CONCURRENCY]:
                if stop.is_set():
                    return
                account = unique("acct")
                with lock:
                    attempted.append((key.key_id, account))
                try:
                    answer = server.client.activate(key.code, account)
                except grpc.RpcError:
                    continue  # the server died under it: no answer, no promise
                with lock:
                    acknowledged.append(Answer(key.key_id, account, "OK", answer.position))
                    if len(acknowledged) >= 100:
                        stop.set()

        return run

    threads = [threading.Thread(target=activate_until_killed(i)) for i in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    stop.wait(timeout=120)
    server.kill()  # SIGKILL, with activations still being written
    for thread in threads:
        thread.join(timeout=60)

    stored = activations_stored(sql, [k.key_id for k in keys])
    for answer in acknowledged:
        assert stored[answer.code] == [answer.position]  # acknowledged: stored, at its position
    assert all(len(positions) == 1 for positions in stored.values())
    assert set(stored) <= {key_id for key_id, _ in attempted}
    versions = sql.execute(
        f"SELECT originator_id::text, array_agg(originator_version ORDER BY originator_version)"
        f" FROM {EVENTS_TABLE} WHERE originator_id = ANY(%s::uuid[]) GROUP BY originator_id",
        ([k.key_id for k in keys],),
    ).fetchall()
    assert {tuple(v) for _, v in versions} <= {(1,), (1, 2)}  # no half-written activation
    assert len(attempted) > len(acknowledged)  # some were in flight when it died
