"""How a worker follows the store: the library's LISTEN/NOTIFY subscription, reading the log at
most once per PULL_SECONDS while notices keep coming.

Every writer's commit NOTIFYs the store's channel, and the library's subscription reads the
notification log on each wake-up: under load, one SELECT per event, and then one batch (one
commit) per event. This subscription reads at once after a quiet spell — so a lone
read-your-writes round never waits — but under load reads again only PULL_SECONDS after its
previous read, so one SELECT, one batch and one commit cover every event committed meanwhile.

The worker's runner picks this recorder through `APPLICATION_RECORDER_TOPIC` (see `runner.py`);
the servers keep the store's own. It overrides a private method of eventsourcing 9.5's
ListenNotifySubscription (`_pull`): should that change, the worker reads once per notice again —
slower, never wrong.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from eventsourcing.persistence import ApplicationRecorder, Subscription
from eventsourcing.postgres import PostgresSubscription

from license_svc.store import LicensingRecorder

TOPIC = "projections.follow:FollowingRecorder"
PULL_SECONDS = 0.005


class FollowingRecorder(LicensingRecorder):
    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PacedSubscription(recorder=self, gt=gt, topics=topics)


class PacedSubscription(PostgresSubscription):
    _last_pull = 0.0  # set here: the library starts the pulling thread inside __init__

    def _pull(self) -> None:
        wait = self._last_pull + PULL_SECONDS - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # notices that arrive meanwhile are all served by this one read
        self._last_pull = time.monotonic()
        super()._pull()
