"""Behind a silent partition (a proxy that keeps the connection and passes nothing, whose kernel
answers TCP keepalives for ever) the streams' log reader and follower are pinned no longer than
their watchdog's bound: the round trip ends with a fault (UNAVAILABLE to a caller), the follower
says how long it has heard nothing, and both resume once bytes pass again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from bench.faults import DatabaseProxy
from license_svc.adapters.watchdog import Watchdog
from license_svc.bootstrap import Service
from license_svc.reads.storelog import LogFollower, LogReader
from tests.chaos.probes import eventually

BOUND = 1.0  # the watchdog's bound in these tests (the server uses statement timeout + grace)
NEVER_HANGS = 30.0  # a bound against hanging, not a speed target


@pytest.fixture
def proxy(database_url: str) -> Iterator[DatabaseProxy]:
    proxy = DatabaseProxy(database_url)
    yield proxy
    proxy.close()


@pytest.fixture
def reader(service: Service, proxy: DatabaseProxy) -> Iterator[LogReader]:
    names = service.feed.reader.names
    through = make_conninfo(names.conninfo, host="127.0.0.1", port=str(proxy.port))
    reader = LogReader(replace(names, conninfo=through), watchdog=Watchdog(BOUND))
    yield reader
    reader.close()


def test_a_silent_round_trip_ends_with_a_fault_and_pins_no_thread(
    reader: LogReader, proxy: DatabaseProxy
) -> None:
    reader.head()  # connected
    proxy.blackhole()
    ended: list[BaseException] = []

    def read() -> None:
        try:
            reader.after(0, 10)
        except BaseException as error:
            ended.append(error)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(NEVER_HANGS)
    assert not thread.is_alive()
    assert len(ended) == 1 and isinstance(ended[0], psycopg.OperationalError)
    assert reader.watchdog.ended == 1

    proxy.heal()
    assert eventually(lambda: _answers(reader), within=NEVER_HANGS)


def test_the_follower_says_how_long_it_heard_nothing_and_hears_again_after_a_heal(
    reader: LogReader, proxy: DatabaseProxy
) -> None:
    follower = LogFollower(reader, recheck_seconds=0.2)
    follower.start()
    try:
        proxy.blackhole()
        eventually(lambda: follower.silent_for() > 2 * BOUND, within=NEVER_HANGS)
        assert reader.watchdog.ended >= 1  # its pinned read was ended, not waited out
        proxy.heal()
        eventually(lambda: follower.silent_for() < BOUND, within=NEVER_HANGS)
    finally:
        follower.stop()


def _answers(reader: LogReader) -> bool:
    try:
        reader.head()
    except psycopg.OperationalError:
        return False  # a pooled connection ended meanwhile: the pool replaces it
    return True
