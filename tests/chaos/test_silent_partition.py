"""Live StreamEvents through a real server whose database connections go silent (a proxy that
keeps them open and passes nothing): the streams end with UNAVAILABLE and RetryInfo within the
keepalive bound instead of waiting in silence, the follower's and readers' threads are freed
once a round trip outlives the statement timeout (and its grace), and the streams resume from
their last position once bytes pass again.

Bounds, in seconds: a live stream ends once the log follower has heard nothing for
config.KEEPALIVE_BOUND (9: what TCP keepalives take to give up on a peer), checked every tick
(1), plus TOLERANCE for a loaded machine; a round trip is ended after STATEMENT_TIMEOUT +
config.ROUND_TRIP_GRACE. These are "never longer than" bounds, not speed targets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bench.faults import DatabaseProxy
from license_svc import config
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from tests.chaos.probes import eventually
from tests.helpers import RichError, rich
from tests.support import Client, ServerProcess
from tests.views_support import SMALL_POOLS, fresh_database

pytestmark = pytest.mark.slow

STREAMS = 3
STATEMENT_TIMEOUT = 5
TOLERANCE = 3.0
STREAM_ENDS_WITHIN = config.KEEPALIVE_BOUND + 1 + TOLERANCE
ROUND_TRIP_ENDS_WITHIN = STATEMENT_TIMEOUT + config.ROUND_TRIP_GRACE + TOLERANCE
NEVER_HANGS = 60.0


@pytest.fixture
def proxy(database_url: str) -> Iterator[DatabaseProxy]:
    with fresh_database(database_url) as database:
        proxy = DatabaseProxy(database)
        yield proxy
        proxy.close()


class LiveStream:
    """A follow stream read on a thread of its own: its last position and how it ended."""

    def __init__(self, client: Client, after: int) -> None:
        request = pb.StreamEventsRequest(after_position=after, follow=True)
        self.call = client.audit.StreamEvents(
            request, metadata=Client.as_("auditor"), timeout=NEVER_HANGS * 2
        )
        self.position = after
        self.caught_up = threading.Event()
        self.ended: RichError | None = None
        self.ended_at = 0.0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for item in self.call:
                kind = item.WhichOneof("item")
                if kind is not None:
                    self.position = max(self.position, int(getattr(item, kind).position))
                if kind == "caught_up":
                    self.caught_up.set()
        except grpc.RpcError as error:
            self.ended = rich(error)
        self.ended_at = time.monotonic()

    def join(self, within: float) -> bool:
        self._thread.join(within)
        return not self._thread.is_alive()


def test_live_streams_end_within_the_keepalive_bound_and_resume_after_a_silent_partition(
    proxy: DatabaseProxy, tmp_path: Path
) -> None:
    server = ServerProcess(
        proxy.url,
        tmp_path / "server.log",
        **SMALL_POOLS,
        LICENSE_SVC_STATEMENT_TIMEOUT=str(STATEMENT_TIMEOUT),
    )
    client = server.client
    try:
        client.issue(2)
        streams = [LiveStream(client, after=0) for _ in range(STREAMS)]
        for stream in streams:
            assert stream.caught_up.wait(NEVER_HANGS)

        proxy.blackhole()
        silent_at = time.monotonic()
        for stream in streams:
            assert stream.join(NEVER_HANGS)
        # The follower's pinned round trip was ended by the service itself.
        left = ROUND_TRIP_ENDS_WITHIN - (time.monotonic() - silent_at)
        eventually(lambda: "database round trip took over" in server.log_text(), within=left)

        proxy.heal()
        healed_at = time.monotonic()
        resumed = eventually(lambda: _resumed(client, streams[0].position), within=NEVER_HANGS)
        assert resumed is not None
        issued = client.issue(1)
        assert eventually(lambda: resumed.position >= issued.position, within=NEVER_HANGS)
        resumed.call.cancel()
        text = server.log_text()
    finally:
        server.stop()

    ended_after = [round(s.ended_at - silent_at, 1) for s in streams]
    print(f"\nstreams ended after {ended_after} s; healed {healed_at - silent_at:.1f} s in")
    for stream in streams:
        assert stream.ended is not None
        assert stream.ended.code == grpc.StatusCode.UNAVAILABLE
        assert stream.ended.retry_delay is not None
        assert stream.ended_at - silent_at <= STREAM_ENDS_WITHIN
    assert "Traceback" not in text


def _resumed(client: Client, after: int) -> LiveStream | None:
    stream = LiveStream(client, after)
    if stream.caught_up.wait(10):
        return stream
    stream.call.cancel()
    return None
