"""IssueKeys over a real channel when this process's minting slots are all taken."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import grpc
import pytest

from license_svc.bootstrap import Service
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.helpers import rich, unique
from tests.support import Client, hold_issuing, issue_request


def request(count: int = 3, request_id: str = "") -> pb.IssueKeysRequest:
    return issue_request(count, request_id=request_id or unique("slots"))


@pytest.fixture
def busy(
    make_service: Callable[..., Service], serve_in_process: Callable[[Service], Client]
) -> Iterator[tuple[Client, threading.Event]]:
    """A server with one minting slot, held by an IssueKeys call until the event is set."""
    service = make_service(issue_concurrency=1)
    inside, release = hold_issuing(service)
    client = serve_in_process(service)
    holder = threading.Thread(
        target=client.keys.IssueKeys,
        args=(request(request_id=unique("holder")),),
        kwargs={"metadata": client.as_("acme"), "timeout": 60},
    )
    holder.start()
    inside.wait(60)
    yield client, release
    release.set()
    holder.join()


def test_a_call_whose_deadline_passes_while_every_slot_is_taken_is_told_to_retry_later(
    busy: tuple[Client, threading.Event],
) -> None:
    client, _ = busy
    with pytest.raises(grpc.RpcError) as caught:
        client.keys.IssueKeys(request(), metadata=client.as_("acme"), timeout=1.5)
    error = rich(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "ISSUING_BUSY")
    assert error.retry_delay is not None and error.retry_delay.total_seconds() > 0


def test_a_call_with_time_to_spare_waits_for_the_slot_and_gets_all_its_keys(
    busy: tuple[Client, threading.Event],
) -> None:
    client, release = busy
    answers: list[pb.IssueKeysResponse] = []

    def issue() -> None:
        answers.append(
            client.keys.IssueKeys(request(count=10_000), metadata=client.as_("acme"), timeout=60)
        )

    waiter = threading.Thread(target=issue)
    waiter.start()
    release.set()
    waiter.join()
    assert [len(a.keys) for a in answers] == [10_000]
    assert len({k.code for k in answers[0].keys}) == 10_000
