"""A racer for the activation race: one OS process, its own channel, released by a barrier.

Lives in its own module so that `multiprocessing`'s spawn start method can import it.
"""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import grpc

from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.api.gen import licensing_pb2_grpc as pb_grpc
from tests.helpers import rich

Job = tuple[int, str, str]  # (round, code, account)
Outcome = tuple[int, str, str, str]  # (round, account, status code name, reason)


def race(
    address: str,
    token: str,
    start: Barrier,
    jobs: Queue[Job | None],
    outcomes: Queue[Outcome | str],
) -> None:
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = pb_grpc.ActivationServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        outcomes.put("ready")
        while (job := jobs.get()) is not None:
            round_no, code, account = job
            request = pb.ActivateKeyRequest(
                code=code,
                account_id=account,
                session_id=f"{account}-session",
                product=pb.PRODUCT_INTEGRATIONS,
            )
            start.wait(timeout=60)
            try:
                stub.ActivateKey(request, metadata=metadata, timeout=30)
                outcomes.put((round_no, account, "OK", ""))
            except grpc.RpcError as error:
                found = rich(error)
                outcomes.put((round_no, account, found.code.name, found.reason))
