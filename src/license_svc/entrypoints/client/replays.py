"""A replayed `keys issue`: the keys minted the first time, each with its status now."""

from __future__ import annotations

import sys

from license_svc.entrypoints.api.gen import licensing_pb2 as pb

from .common import Connection, enum_name


def mark_replayed(
    conn: Connection, rows: list[dict[str, str]], batches: list[str], position: int, base: str
) -> None:
    """A replay hands back keys minted earlier, which may since have been activated, revoked
    or expired: say so on stderr, and put each key's current status beside it (read from the
    batch's keys, at least as new as the replayed answer) so nobody hands out a dead key."""
    status: dict[str, str] = {}
    for batch in batches:
        token = ""
        while True:
            page = conn.call(
                conn.keys.ListKeys,
                pb.ListKeysRequest(
                    batch_id=batch, page_size=1000, page_token=token, min_position=position
                ),
            )
            status.update({k.key_id: enum_name(pb.KeyStatus, k.status) for k in page.keys})
            token = page.next_page_token
            if not token:
                break
    for row in rows:
        row["status"] = status.get(row["key_id"], "unknown")
    used = sum(1 for row in rows if row["status"] != "issued")
    print(
        f"license-svc: REPLAYED: request id {base} was issued before; nothing new was minted."
        f" These are the keys issued then; {used} of {len(rows)} are no longer issued"
        " (see STATUS): hand out only issued ones.",
        file=sys.stderr,
    )
