"""The lease sweeper: records `SeatLeaseExpired` for each lease that ran past its `expires_at`.

The seat was free from that instant (acquires never wait for this); the sweeper only writes the
history. Each pass takes up to `batch` due leases in one transaction: it marks their rows
recorded and appends their events together, so a lease is recorded exactly once — rows another
sweeper holds are skipped, and the ending's version (2) is the store's constraint besides.
"""

from __future__ import annotations

import logging

from license_svc.domain.seats import ending

from .book import SeatBook

log = logging.getLogger("license_svc.seats.sweeper")


class LeaseSweeper:
    def __init__(self, book: SeatBook, batch: int = 500) -> None:
        self._book = book
        self._batch = batch

    def sweep_once(self) -> int:
        """Record every due lease's expiry; return how many this sweeper recorded."""
        recorded = 0
        while True:
            done = self._record_batch()
            recorded += done
            if done < self._batch:
                return recorded

    def _record_batch(self) -> int:
        book = self._book
        with book.pipelined() as (conn, curs, insert):
            with conn.transaction():
                rows = curs.execute(book.table.expire, (book.now(), self._batch)).fetchall()
                if rows:
                    events = [
                        ending(
                            r["lease_id"],
                            r["account_id"],
                            r["product"],
                            r["ended_at"],
                            released=False,
                        )
                        for r in rows
                    ]
                    book.append(curs, insert, events)
            return len(rows)

    def sweep_and_log(self) -> None:
        """One pass, its records logged (the task `bootstrap` runs periodically)."""
        recorded = self.sweep_once()
        if recorded:
            log.info("recorded %d expired seat leases", recorded)
