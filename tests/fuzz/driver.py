"""The fuzz loop: hostile requests at a real server, one at a time, each one checked.

For every request it records the status code per method and flags:
- UNKNOWN or INTERNAL (a reproducer is printed: method, metadata and the body);
- a hang: an answer later than the call's deadline plus a margin;
- a change by a rejected request: the store's head and the views' row counts are read after
  each request and compared with the state before it. Requests go one at a time and the views
  are waited for after each accepted one, so a difference after a rejected request is its own.
  (Failed dialog attempts are rows of the limiter, not of the store or the views: the dialog
  counts them by design; they are reported apart.)
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import psycopg
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as with_seed
from hypothesis import strategies as st

from projections.registry import view_class
from tests.fuzz import strategies
from tests.fuzz.strategies import Known, Metadata

# Writes get long deadlines (a 10,000-key batch on a busy machine), so that a deadline never
# leaves a write landing after the next request's snapshot; reads that wait for a position and
# streams that follow get short ones, so the run does not sit out their waits.
WRITE_DEADLINE = 60.0
READ_DEADLINE = 2.0
STREAM_DEADLINE = 1.0
HANG_MARGIN = 3.0
STREAM_ITEMS = 5  # a stream is read this far (or to its caught_up), then cancelled
WRITES = {"IssueKeys", "RevokeKey", "ActivateKey", "RecordPlanEvent", "LiftAttemptBlock"}
BAD = {"UNKNOWN", "INTERNAL"}


@dataclass
class Snapshot:
    head: int
    view_rows: int
    attempts: int


@dataclass
class Problem:
    what: str
    method: str
    code: str
    detail: str
    metadata: Metadata
    body: bytes

    def reproducer(self, address: str) -> str:
        return (
            f"{self.what}: {self.method} answered {self.code} ({self.detail})\n"
            f"  python -c \"import grpc; ch = grpc.insecure_channel('{address}');"
            f" print(ch.unary_unary('{self.method}', None, None)({self.body!r},"
            f' metadata={self.metadata!r}, timeout=10))"'
        )


@dataclass
class Report:
    address: str
    requests: int = 0
    seconds: float = 0.0
    codes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    problems: list[Problem] = field(default_factory=list)
    rejected: int = 0
    rejected_unchanged: int = 0
    attempts_recorded: int = 0
    before: Snapshot | None = None
    after: Snapshot | None = None

    @property
    def bad(self) -> int:
        return sum(c[code] for c in self.codes.values() for code in BAD)

    @property
    def hangs(self) -> int:
        return sum(1 for p in self.problems if p.what == "hang")

    @property
    def changed(self) -> int:
        return sum(1 for p in self.problems if p.what == "changed")

    def table(self) -> str:
        names = sorted({code for c in self.codes.values() for code in c})
        width = max(len(m) for m in self.codes) if self.codes else 10
        head = f"{'method':<{width}} " + " ".join(f"{n:>19}" for n in names) + f" {'total':>8}"
        lines = [head, "-" * len(head)]
        totals: Counter[str] = Counter()
        for method in sorted(self.codes):
            counts = self.codes[method]
            totals.update(counts)
            cells = " ".join(f"{counts.get(n, 0):>19,}" for n in names)
            lines.append(f"{method:<{width}} {cells} {sum(counts.values()):>8,}")
        cells = " ".join(f"{totals.get(n, 0):>19,}" for n in names)
        lines.append(f"{'all':<{width}} {cells} {sum(totals.values()):>8,}")
        return "\n".join(lines)

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        before, after = self.before, self.after
        lines = [
            f"fuzz: {self.requests:,} requests in {self.seconds:,.0f} s ({rate:,.0f}/s)"
            f" against {self.address}",
            self.table(),
            f"UNKNOWN/INTERNAL: {self.bad}   hangs past the deadline (+{HANG_MARGIN:.0f} s):"
            f" {self.hangs}",
            f"rejected requests: {self.rejected:,}; store head and view rows unchanged by"
            f" {self.rejected_unchanged:,} of them; changed by {self.changed}",
            f"failed dialog attempts the limiter recorded (by design): {self.attempts_recorded:,}",
        ]
        if before and after:
            lines.append(
                f"store events {before.head:,} → {after.head:,}; view rows"
                f" {before.view_rows:,} → {after.view_rows:,} (accepted requests only)"
            )
        seen: Counter[tuple[str, str, str]] = Counter(
            (p.what, p.method, p.code) for p in self.problems
        )
        shown: set[tuple[str, str, str]] = set()
        for p in self.problems:  # the first reproducer of each kind, with how often it happened
            kind = (p.what, p.method, p.code)
            if kind not in shown:
                shown.add(kind)
                lines.append(f"[{seen[kind]}x] " + p.reproducer(self.address))
        return "\n".join(lines)


class State:
    """The store's head, the live views' row counts and positions, in one statement."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        live = conn.execute("SELECT name, live FROM view_generations ORDER BY name").fetchall()
        tables = [f"{n}_g{g}_{s}" for n, g in live for s in view_class(n).tables]
        tracking = [f"{n}_g{g}_tracking" for n, g in live]
        rows = " + ".join(f"(SELECT count(*) FROM {t})" for t in tables) or "0"
        lowest = ", ".join(f"(SELECT coalesce(max(notification_id), 0) FROM {t})" for t in tracking)
        self._sql = (
            "SELECT (SELECT coalesce(max(notification_id), 0) FROM licensing_events),"
            f" {rows}, (SELECT count(*) FROM failed_attempts), least({lowest or '0'})"
        )

    def read(self) -> tuple[Snapshot, int]:
        row = self.conn.execute(self._sql).fetchone()
        assert row is not None
        return Snapshot(int(row[0]), int(row[1]), int(row[2])), int(row[3])

    def settled(self, timeout: float = 60.0) -> Snapshot:
        """Once every view has applied the whole store."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot, lowest = self.read()
            if lowest >= snapshot.head or time.monotonic() > deadline:
                return snapshot
            time.sleep(0.01)


def send(
    channel: grpc.Channel, method: MethodDescriptor, body: bytes, metadata: Metadata
) -> tuple[str, str, float, float]:
    """(code name, details, seconds taken, deadline) of one call with a raw body."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.server_streaming:
        deadline = STREAM_DEADLINE
    else:
        deadline = WRITE_DEADLINE if method.name in WRITES else READ_DEADLINE
    started = time.monotonic()
    received = 0
    # A watch sends the allowance at once and then only on changes: its first message will do.
    enough = 1 if method.name.startswith("Watch") else STREAM_ITEMS
    try:
        if method.server_streaming:
            call = channel.unary_stream(path, None, None)(body, metadata=metadata, timeout=deadline)
            for item in call:
                received += 1
                if received >= enough or _caught_up(method, item):
                    call.cancel()
                    break
        else:
            channel.unary_unary(path, None, None)(body, metadata=metadata, timeout=deadline)
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        lived = code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)
        if method.server_streaming and lived and received:
            return "OK", "", time.monotonic() - started, deadline  # it streamed till we left
        return code.name, error.details() or "", time.monotonic() - started, deadline  # type: ignore[attr-defined]
    return "OK", "", time.monotonic() - started, deadline


def _caught_up(method: MethodDescriptor, raw: bytes) -> bool:
    from google.protobuf.message_factory import GetMessageClass

    item = GetMessageClass(method.output_type).FromString(raw)
    return "caught_up" in item.DESCRIPTOR.fields_by_name and item.HasField("caught_up")


def fuzz(
    address: str,
    database_url: str,
    known: Known,
    requests: int,
    seed: int = 0,
    progress: int = 0,  # a line on stderr every this many requests (0: none)
) -> Report:
    report = Report(address)
    channel = grpc.insecure_channel(address)
    all_methods = strategies.methods()
    bodies = {m.full_name: _bodies(m, known) for m in all_methods}
    metadatas = {m.full_name: strategies.metadata(_path(m)) for m in all_methods}
    with psycopg.connect(database_url, autocommit=True) as conn:
        state = State(conn)
        report.before = current = state.settled()
        started = time.monotonic()

        @with_seed(seed)
        @settings(
            max_examples=requests,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(st.data())
        def one(data: st.DataObject) -> None:
            nonlocal current
            method = data.draw(st.sampled_from(all_methods), label="method")
            body = data.draw(bodies[method.full_name], label="body")
            metadata = data.draw(metadatas[method.full_name], label="metadata")
            code, detail, seconds, deadline = send(channel, method, body, metadata)
            report.requests += 1
            if progress and report.requests % progress == 0:
                took = time.monotonic() - started
                line = f"fuzz: {report.requests:,} requests, {report.bad} UNKNOWN/INTERNAL"
                print(f"{line}, {took:,.0f} s", file=sys.stderr, flush=True)
            report.codes[f"{method.containing_service.name}.{method.name}"][code] += 1
            if code in BAD:
                report.problems.append(Problem(code, _path(method), code, detail, metadata, body))
            if seconds > deadline + HANG_MARGIN:
                report.problems.append(
                    Problem("hang", _path(method), code, f"{seconds:.1f} s", metadata, body)
                )
            if code == "OK":
                current = state.settled()
                return
            after, _ = state.read()
            report.rejected += 1
            report.attempts_recorded += after.attempts - current.attempts
            if (after.head, after.view_rows) == (current.head, current.view_rows):
                report.rejected_unchanged += 1
            else:
                change = (
                    f"store {current.head}→{after.head},"
                    f" views {current.view_rows}→{after.view_rows}"
                )
                report.problems.append(
                    Problem("changed", _path(method), code, change, metadata, body)
                )
                after = state.settled()
            current = after

        one()
        report.seconds = time.monotonic() - started
        report.after = state.settled()
    channel.close()
    return report


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _bodies(method: MethodDescriptor, known: Known) -> st.SearchStrategy[bytes]:
    """A third hostile messages, half plausible ones (one field twisted), a sixth raw bytes."""
    typed = strategies.message(method.input_type, known).map(_encode)
    plausible = strategies.plausible(method.input_type, known).map(_encode)
    raw = strategies.raw_body(method.input_type, known)
    return strategies.weighted((2, typed), (3, plausible), (1, raw))


def _encode(message: Message) -> bytes:
    return message.SerializeToString()


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
