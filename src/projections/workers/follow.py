"""How a worker follows the store: the library's LISTEN/NOTIFY subscription, reading the log at
most once per PULL_SECONDS while notices keep coming, and never missing an event it was not
told about.

Every writer's commit NOTIFYs the store's channel, and the library's subscription reads the
notification log on each wake-up: under load, one SELECT per event, and then one batch (one
commit) per event. This subscription reads at once after a quiet spell — so a lone
read-your-writes round never waits — but under load reads again only PULL_SECONDS after its
previous read, so one SELECT, one batch and one commit cover every event committed meanwhile.

Two gaps of the library's subscription are closed here:
- It reads the log once before its LISTEN is in place: an event committed between that read and
  the LISTEN sent no notice this subscription could hear, and waited for the next write (for
  ever, if none came). Every runner (re)start — a worker taking over a view, a generation
  switch — opened that window. This one reads again as soon as LISTEN is in place.
- A notice can still be lost with its connection. After RECHECK_SECONDS without one, it reads
  the log anyway (one indexed SELECT that finds nothing, on an idle store).

The worker's runner picks this recorder through `APPLICATION_RECORDER_TOPIC` (see `runner.py`);
the servers keep the store's own. It overrides private methods of eventsourcing 9.5's
ListenNotifySubscription and PostgresSubscription (`_pull`, `_listen`): should they change, the
worker reads once per notice again — slower, never wrong — and the two gaps reopen, which
`tests/integration/test_runner.py` would show.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from eventsourcing.persistence import ApplicationRecorder, Subscription
from eventsourcing.postgres import PostgresSubscription
from psycopg.sql import SQL, Identifier

from license_svc.adapters.eventstore import LicensingRecorder

TOPIC = "projections.workers.follow:FollowingRecorder"
PULL_SECONDS = 0.005
RECHECK_SECONDS = 1.0
LISTEN_TICK_SECONDS = 0.1  # how often the listener checks whether it was stopped (the library's)


class FollowingRecorder(LicensingRecorder):
    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PacedSubscription(recorder=self, gt=gt, topics=topics)


class PacedSubscription(PostgresSubscription):
    _last_pull = 0.0  # set here: the library starts the pulling thread inside __init__
    recheck_seconds = RECHECK_SECONDS

    def _pull(self) -> None:
        wait = self._last_pull + PULL_SECONDS - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # notices that arrive meanwhile are all served by this one read
        self._last_pull = time.monotonic()
        super()._pull()

    def _listen(self) -> None:
        """The library's listener, plus a read once LISTEN is in place and one after every
        quiet RECHECK_SECONDS."""
        try:
            with self._recorder.datastore.get_connection() as conn:
                conn.execute(SQL("LISTEN {0}").format(Identifier(self._recorder.channel_name)))
                self._has_been_notified.set()  # whatever committed before LISTEN took effect
                heard_at = time.monotonic()
                while not self._has_been_stopped and not self._thread_error:
                    for _ in conn.notifies(timeout=LISTEN_TICK_SECONDS, stop_after=1):
                        self._has_been_notified.set()
                        heard_at = time.monotonic()
                    if time.monotonic() - heard_at >= self.recheck_seconds:
                        self._has_been_notified.set()
                        heard_at = time.monotonic()
        except BaseException as error:
            if self._thread_error is None:
                self._thread_error = error
            self.stop()
