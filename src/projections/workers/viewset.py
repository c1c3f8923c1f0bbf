"""The views one worker keeps, applied together: one subscription, one transaction per batch.

A worker follows the store once for all the views it holds, so the notification log is read
and decoded once, not once per view; and each batch is one transaction in which every view
writes its part, its own tracking row and its own notice: one commit, one turn at Postgres's
global NOTIFY lock, instead of one per view. Views may stand at different positions (a worker
that took one over, a freshly switched generation): the subscription starts at the lowest, and
each view is given only the events after its own position, so each stays exactly-once by its
own tracking row. The price: while a rebuild switches one view (its live tracking table locked
until the new generation has caught up, normally milliseconds), the worker's other views wait
with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.projection import Projection

from projections.base import Batch, View

Item = tuple[Any, Tracking]

# A view commit does not wait for its WAL flush — nor hold the global NOTIFY lock through it,
# which every writer's commit (the event store NOTIFYs too) queues behind. Safe because views
# are rebuildable and each tracking row is in the same transaction as its view's changes: a
# database crash can lose the last few view commits only together with their tracking rows,
# and the worker replays from the recorded positions. Events are still committed synchronously.
ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true)"  # = SET LOCAL


class ViewSet(TrackingRecorder):
    """Several views on one datastore, written in one transaction per batch."""

    def __init__(self, views: Sequence[View]) -> None:
        if not views:
            raise ValueError("a view set needs at least one view")
        self.views = list(views)
        self.datastore = self.views[0].datastore
        assert all(view.datastore is self.datastore for view in self.views)
        self._positions = {view.full_name: view.position() for view in self.views}

    def max_tracking_id(self, application_name: str) -> int | None:
        """Where the subscription starts: the position of the view furthest behind."""
        return min(self._positions.values())

    def insert_tracking(self, tracking: Tracking) -> None:
        raise TypeError("a view set records tracking with each view's batch, never alone")

    def record(self, items: Sequence[Item]) -> None:
        parts = [
            (view, Batch.of(due, after=self._positions[view.full_name]))
            for view in self.views
            if (due := self._due(view, items))
        ]
        if not parts:
            return
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(ASYNC_COMMIT, prepare=True)
            for view, batch in parts:
                view.write(curs, batch)
        for view, batch in parts:
            self._positions[view.full_name] = batch.last

    def _due(self, view: View, items: Sequence[Item]) -> Sequence[Item]:
        position = self._positions[view.full_name]
        if items[0][1].notification_id > position:
            return items
        return [item for item in items if item[1].notification_id > position]


class ViewSetProjection(Projection[ViewSet]):
    """The library's projection shape over a view set; the runner hands it whole batches."""

    name = "views"

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.process_batch([(domain_event, tracking)])

    def process_batch(self, items: Sequence[Item]) -> None:
        if items:
            self.view.record(items)
