"""Eight OS processes activate one key for eight accounts at the same moment: one wins."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import psycopg
import pytest

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.e2e.racers import Outcome, race
from tests.helpers import EVENTS_TABLE, unique
from tests.support import TOKENS, Client, ServerProcess

RACERS = 8
ROUNDS = 50


@pytest.mark.slow
def test_eight_processes_racing_for_one_key_leave_exactly_one_winner_every_round(
    server: ServerProcess, client: Client, sql: psycopg.Connection
) -> None:
    keys = client.issue(ROUNDS).keys
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(RACERS)
    outcomes: multiprocessing.Queue[Outcome | str] = spawn.Queue()
    jobs = [spawn.Queue() for _ in range(RACERS)]
    racers = [
        spawn.Process(
            target=race, args=(server.address, TOKENS["portal"], start, jobs[i], outcomes)
        )
        for i in range(RACERS)
    ]
    for racer in racers:
        racer.start()
    try:
        assert [outcomes.get(timeout=120) for _ in racers] == ["ready"] * RACERS
        tag = unique("race")
        rounds: list[list[Outcome]] = []
        for round_no, key in enumerate(keys):
            for i, queue in enumerate(jobs):
                queue.put((round_no, key.code, f"{tag}-r{round_no}-a{i}"))
            answers = [outcomes.get(timeout=60) for _ in racers]
            rounds.append([a for a in answers if not isinstance(a, str)])
        for queue in jobs:
            queue.put(None)
        for racer in racers:
            racer.join(timeout=60)
    finally:
        for racer in racers:
            if racer.is_alive():
                racer.kill()

    winners: dict[str, str] = {}
    for key, results in zip(keys, rounds, strict=True):
        tally = Counter((status, reason) for _, _, status, reason in results)
        assert tally == {("OK", ""): 1, ("FAILED_PRECONDITION", "KEY_NOT_AVAILABLE"): 7}, tally
        [winner] = [account for _, account, status, _ in results if status == "OK"]
        winners[key.key_id] = winner

    activated: dict[str, int] = dict(
        sql.execute(
            f"SELECT originator_id::text, count(*) FROM {EVENTS_TABLE}"
            " WHERE originator_id = ANY(%s::uuid[]) AND topic LIKE %s GROUP BY originator_id",
            ([k.key_id for k in keys], "%KeyActivated"),
        ).fetchall()
    )
    assert activated == {k.key_id: 1 for k in keys}
    for key in keys[:5]:
        stored = client.keys.GetKey(
            pb.GetKeyRequest(key_id=key.key_id), metadata=Client.as_("ops"), timeout=10
        ).key
        assert stored.account_id == winners[key.key_id]
