"""The run's table, the issue's targets (printed, never asserted) and the JSON files."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.plan import TARGET_CONCURRENCY
from bench.results import OK, Results, Series, value_of
from bench.stats import ratio

RSS_LIMIT_MB = 200.0


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    limit: float
    higher_is_better: bool
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None or math.isnan(self.value):
            return None
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "value": self.value,
            "limit": self.limit,
            "pass": self.passed,
            "note": self.note,
        }


def _row(results: Results, name: str, concurrency: int) -> tuple[dict[str, Any] | None, str]:
    """The row at `concurrency`, else the highest measured below it (and a note saying so)."""
    series = results.series.get(name)
    if series is None or series.status != OK or not series.levels:
        return None, f"{name}: {series.status if series else 'not measured'}"
    row = series.at(concurrency)
    if row is not None:
        return row, ""
    lower = [r for r in series.levels if (r["concurrency"] or 0) <= concurrency]
    if not lower:
        return None, f"{name}: no row at c≤{concurrency}"
    row = max(lower, key=lambda r: r["concurrency"] or 0)
    return row, f"{name} at c={row['concurrency']} (no c={concurrency} in this run)"


def targets(results: Results) -> list[Target]:
    c = TARGET_CONCURRENCY
    found: list[Target] = []
    throughput_targets: dict[tuple[str, str], Target] = {}  # by (operation, ceiling)

    def against(name: str, op: str, ceiling: str, key: str, limit: float, higher: bool) -> None:
        row, note_a = _row(results, op, c)
        ref, note_b = _row(results, ceiling, c)
        value = ratio(value_of(row, key), value_of(ref, key))
        target = Target(name, value, limit, higher, "; ".join(n for n in (note_a, note_b) if n))
        found.append(target)
        if key == "throughput":
            throughput_targets[(op, ceiling)] = target

    against(
        "GetSeatAllowance throughput / ceiling (b)",
        "GetSeatAllowance",
        "b_select",
        "throughput",
        0.8,
        True,
    )
    against(
        "GetSeatAllowance p99 / ceiling (b) p99",
        "GetSeatAllowance",
        "b_select",
        "p99_ms",
        2.0,
        False,
    )
    against(
        "ActivateKey throughput / ceiling (e)",
        "ActivateKey",
        "e_repository",
        "throughput",
        1.5,  # group commit: beyond what the library does one save at a time
        True,
    )
    against(
        "ActivateKey p99 / ceiling (e) p99", "ActivateKey", "e_repository", "p99_ms", 1.0, False
    )
    against("IssueKeys rows/s / COPY (d)", "IssueKeys", "d_copy", "throughput", 0.8, True)
    # Seat leases (rules §12): a pair is two writes, one of them under the account's lock.
    against(
        "SeatLeasePair (AcquireSeat + ReleaseSeat) / ceiling (e)",
        "SeatLeasePair",
        "e_repository",
        "throughput",
        0.7,
        True,
    )
    for paired in results.rechecks:
        main = throughput_targets[(paired["operation"], paired["ceiling"])]
        rounds = ", ".join(f"{r:.2f}" for r in paired["rounds"])
        found.append(
            Target(
                f"{main.name}, paired re-check (median of {len(paired['rounds'])})",
                paired["median"],
                main.limit,
                main.higher_is_better,
                f"rounds {rounds}: each ceiling measured right before its operation",
            )
        )
    row, note = _row(results, "RenewSeats100", 8)
    found.append(
        Target("RenewSeats of 100 leases p99 ms at c=8", value_of(row, "p99_ms"), 20, False, note)
    )
    rebuilds = [s for s in results.operations() if s.name.startswith("Rebuild")]
    for series in rebuilds or [Series("Rebuild", "operation", status="not available yet")]:
        row, note = _row(results, series.name, c)
        found.append(
            Target(
                f"{series.name} events/s",
                value_of(row, "throughput"),
                20_000,
                True,
                note or series.note,
            )
        )
        against(f"{series.name} / COPY (d)", series.name, "d_copy", "throughput", 0.5, True)
    row, note = _row(results, "ReadYourWrites", 1)
    found.append(Target("ReadYourWrites p50 ms at c=1", value_of(row, "p50_ms"), 15, False, note))
    found.append(Target("ReadYourWrites p99 ms at c=1", value_of(row, "p99_ms"), 50, False, note))
    warm = "GetSeatAllowance cache warm"
    against(f"{warm} throughput / ceiling (b)", warm, "b_select", "throughput", 1.0, True)
    against(f"{warm} throughput / ceiling (a)", warm, "a_echo", "throughput", 0.5, True)
    against(f"{warm} p99 / ceiling (b) p99", warm, "b_select", "p99_ms", 1.0, False)
    fanout = results.series.get("WatchSeatAllowance fan-out")
    row = fanout.at(1_000) if fanout else None
    found.append(
        Target(
            "WatchSeatAllowance fan-out p99 ms, 1,000 watchers",
            value_of(row, "p99_ms"),
            50,
            False,
            "commit (ActivateKey answered) to the update received, every watcher",
        )
    )
    idle = results.series.get("WatchSeatAllowance idle")
    row = idle.at(10_000) if idle and len(idle.levels) > 1 else None
    opened = value_of(row, "opened")
    short = opened is not None and opened < 10_000  # an RSS of fewer open watches is no figure
    found.append(
        Target(
            "server RSS MB, 10,000 idle watchers",
            None if short else value_of(row, "throughput"),
            400,
            False,
            f"only {opened:,.0f} of 10,000 watches were open at the sample" if short else "",
        )
    )
    rss = [r.get("peak_rss_mb", 0.0) for s in results.operations() for r in s.levels]
    found.append(
        Target(
            "peak RSS MB per server process",
            max(rss, default=None),
            RSS_LIMIT_MB,
            False,
            "max over every operation and level",
        )
    )
    return found


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.{digits}f}"
    return str(value)


COLUMNS = (  # title, width, key, digits
    ("c", 4, "concurrency", 0),
    ("throughput", 11, "throughput", 1),
    ("p50 ms", 8, "p50_ms", 2),
    ("p95 ms", 8, "p95_ms", 2),
    ("p99 ms", 8, "p99_ms", 2),
    ("srvCPU", 7, "server_cpu", 2),
    ("dbCPU", 6, "db_cpu", 2),
    ("wrkCPU", 7, "worker_cpu", 2),
    ("cliCPU", 7, "client_cpu", 2),
    ("RSS MB", 7, "peak_rss_mb", 0),
)


def _line(name: str, unit: str, row: dict[str, Any], ceiling: str, share: str, errors: str) -> str:
    cells = "".join(f"{_fmt(row.get(key), digits):>{width}}" for _, width, key, digits in COLUMNS)
    return f"{name:<24}{cells} {unit:<9} {ceiling:<14}{share:>6}  {errors}"


def table(results: Results) -> str:
    titles = "".join(f"{title:>{width}}" for title, width, _, _ in COLUMNS)
    header = f"{'series':<24}{titles} {'unit':<9} {'ceiling':<14}{'ratio':>6}  errors"
    lines = [header, "-" * len(header)]
    for series in [*results.ceilings(), *results.operations()]:
        if series.status != OK and not series.levels:
            lines.append(f"{series.name:<24}  {series.status}: {series.note}")
            continue
        ceiling = results.series.get(series.ceiling)
        for row in series.levels:
            ref = ceiling.at(row["concurrency"] or 1) if ceiling else None
            share = _fmt(ratio(row["throughput"], value_of(ref, "throughput")), 2)
            errors = sum(row.get("error_codes", {}).values())
            lines.append(
                _line(series.name, series.unit, row, series.ceiling, share, str(errors or ""))
            )
        if series.status != OK:
            lines.append(f"{'':<24}  {series.status}: {series.note}")
    return "\n".join(lines)


def targets_text(found: list[Target]) -> str:
    lines = [f"Targets (at c={TARGET_CONCURRENCY} unless stated; reported, not asserted):"]
    for t in found:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t.passed]
        op = "≥" if t.higher_is_better else "≤"
        lines.append(
            f"  [{verdict}] {t.name}: {_fmt(t.value, 2)} (target {op} {t.limit:g})"
            + (f"  — {t.note}" if t.note else "")
        )
    return "\n".join(lines)


def scaling_text(results: Results) -> str:
    if not results.scaling:
        return ""
    lines = ["Read throughput, 1 vs 2 server workers (the load generator shares the same 2 cores):"]
    for s in results.scaling:
        lines.append(
            f"  {s['series']:<22} c={s['concurrency']:<3} 1 worker {_fmt(s['workers_1'])}/s"
            f"  → 2 workers {_fmt(s['workers_2'])}/s  (×{_fmt(s['ratio'], 2)};"
            f" server CPU by replica {s.get('cpu_split', '-')})"
        )
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """NaN is not JSON: missing figures become null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(results: Results, found: list[Target], folder: Path, stamp: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": results.meta,
        "series": {name: s.as_dict() for name, s in results.series.items()},
        "targets": [t.as_dict() for t in found],
        "scaling": results.scaling,
        "rechecks": results.rechecks,
    }
    text = json.dumps(_clean(document), indent=1, default=str, allow_nan=False)
    path = folder / f"{stamp}.json"
    path.write_text(text)
    (folder / "latest.json").write_text(text)
    return path
