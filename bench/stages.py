"""The stages of a run, in order: ceilings, the service's operations, rebuild, scaling."""

from __future__ import annotations

import logging
import random
import statistics
from collections.abc import Sequence
from pathlib import Path

import grpc
import psycopg

from bench import ceiling_server, inprocess, projections
from bench.database import count_events
from bench.measure import Runner, fresh_budget
from bench.plan import TARGET_CONCURRENCY
from bench.processes import ProcessGroup, service_env, start_ceiling
from bench.results import NOT_AVAILABLE, OK, Results, Series, scalar_row, value_of
from bench.scenarios import SCENARIOS, unavailable
from bench.seed import Seeder
from bench.stats import ratio

log = logging.getLogger("bench")
# RenewSeats100: batches of 100 leases held for the run, enough that callers rarely share one
# (each holder heartbeats its own leases; callers renewing one batch would queue on its rows).
LEASE_BATCHES = 40
READS = (
    "GetSeatAllowance",
    "GetAllowanceToken",
    "GetSubscriptionSummary",
    "ValidateKey",
    "GetKeyHistory",
)
CEILING_MODES = {
    "a_echo": "echo",
    "b_select": "select",
    "c_insert": "insert",
    # Not ceilings of a target: the same work on a grpc.aio server (the server-model question).
    "a2_aio_echo": "aio-echo",
    "b2_aio_select": "aio-select",
}
SERVER_MODEL = ("a2_aio_echo", "b2_aio_select")
# The ceilings each operation is compared with (so --only measures just what it needs).
NEEDS = {
    "GetSeatAllowance": ("a_echo", "b_select"),
    "GetAllowanceToken": ("a_echo", "b_select"),
    "GetSubscriptionSummary": ("a_echo", "b_select"),
    "ValidateKey": ("a_echo", "b_select"),
    "GetKeyHistory": ("a_echo", "b_select"),
    "ActivateKey": ("c_insert", "e_repository", "g_appends"),
    "RecordPlanEvent": ("c_insert", "e_repository"),
    "ReadYourWrites": ("c_insert",),
    "IssueKeys": ("d_executemany",),  # (d) measures executemany and COPY together
    "Rebuild": ("d_executemany", "f_notifications"),
}


def ceilings_for(selected: Sequence[str]) -> list[str]:
    wanted = {c for name in selected for c in NEEDS.get(name, (name,))}
    order = [
        "a_echo",
        "b_select",
        "c_insert",
        *SERVER_MODEL,
        "d_executemany",
        "e_repository",
        "f_notifications",
        "g_appends",
    ]
    return [c for c in order if c in wanted]


def rpc_ceilings(
    runner: Runner,
    results: Results,
    url: str,
    workers: int,
    logs: Path,
    names: Sequence[str],
    levels: Sequence[int] | None = None,
    kind: str = "ceiling",
    suffix: str = "",
) -> None:
    """(a)–(c): the bare grpcio server, same settings, same client code."""
    with psycopg.connect(url) as conn:
        ceiling_server.prepare_tables(conn)
    accounts = [ceiling_server.account(i) for i in range(ceiling_server.ACCOUNTS)]
    random.shuffle(accounts)
    for name in names:
        if name not in CEILING_MODES:
            continue
        series = results.add(Series(name + suffix, kind, workers=workers))
        with start_ceiling(CEILING_MODES[name], url, workers, logs) as group:
            runner.closed_loop(
                series,
                "ceiling",
                group.address,
                group.pids,
                lambda _: accounts,
                False,
                levels or runner.plan.levels,
            )


def bulk_ceilings(runner: Runner, results: Results, url: str) -> None:
    """(d): executemany and COPY of 10,000 rows shaped like this store's KeyIssued."""
    state_bytes = inprocess.mean_state_bytes(url)
    best = runner.executor.submit(inprocess.bulk_ceiling, url, state_bytes).result()
    for kind in ("executemany", "copy"):
        series = results.add(Series(f"d_{kind}", "ceiling", unit="rows/s"))
        series.levels.append(
            scalar_row(best[kind], rows=inprocess.BULK_ROWS, state_bytes=state_bytes)
        )
        log.info("%-24s %12.0f rows/s", series.name, best[kind])


def repository_ceiling(runner: Runner, results: Results, url: str) -> None:
    series = results.add(Series("e_repository", "ceiling"))
    runner.repository(series, url, runner.plan.levels)


def notification_ceiling(runner: Runner, results: Results, url: str) -> None:
    read = runner.executor.submit(inprocess.notification_ceiling, url).result()
    series = results.add(Series("f_notifications", "ceiling", unit="events/s"))
    series.levels.append(scalar_row(read["events_per_s"], events=read["events"]))
    log.info("%-24s %12.0f events/s (%d events)", series.name, read["events_per_s"], read["events"])


def operation(
    runner: Runner,
    results: Results,
    service: ProcessGroup,
    seeder: Seeder,
    name: str,
    workers: int,
    levels: Sequence[int] | None = None,
    label: str = "",
    kind: str = "",
) -> Series:
    """Measure one operation at each level, or record why it cannot be measured yet."""
    scenario = SCENARIOS[name]
    plan = runner.plan
    series = Series(
        label or name,
        kind or ("operation" if not label else "scaling"),
        scenario.unit,
        scenario.ceiling,
        workers=workers,
    )
    results.add(series)
    with grpc.insecure_channel(service.address) as channel:
        reason = unavailable(channel, scenario)
    if reason:
        series.status, series.note = NOT_AVAILABLE, reason
        log.info("%-24s %s (%s)", name, NOT_AVAILABLE, reason)
        return series
    if scenario.items == "fresh":

        def items_for(concurrency: int) -> list[str]:
            return seeder.codes(fresh_budget(series, plan, concurrency))
    else:
        seeds = seeder.reads(plan.seed_activated, plan.seed_unredeemed)
        if scenario.items == "accounts":  # the reads, and leases (no subscription until seen)
            seeder.catch_up()
        reusable = {
            "accounts": seeds.accounts,
            "history": seeds.history,
            "unredeemed": seeds.unredeemed,
            "contended": [seeder.seat_account(5)] if scenario.items == "contended" else [],
            "lease_batches": (
                seeder.lease_batches(LEASE_BATCHES) if scenario.items == "lease_batches" else []
            ),
            "none": [],
        }[scenario.items]

        def items_for(concurrency: int) -> list[str]:
            return reusable

    default_levels = plan.issue_levels if scenario.long_calls else plan.levels
    return runner.closed_loop(
        series,
        name,
        service.address,
        service.pids,
        items_for,
        scenario.items == "fresh",
        levels or default_levels,
        warmup=0.0 if scenario.long_calls else None,
    )


def rebuild(runner: Runner, results: Results, url: str, seeder: Seeder, logs: Path) -> None:
    """Projection rebuild through the CLI, over at least `rebuild_events` stored events."""
    if "rebuild" not in projections.subcommands():
        series = results.add(Series("Rebuild", "operation", "events/s", "d_copy"))
        series.status = NOT_AVAILABLE
        series.note = "`license-svc projections rebuild` does not exist yet"
        log.info("Rebuild: %s", series.note)
        return
    missing = runner.plan.rebuild_events - count_events(url)
    if missing > 0:
        seeder.issue(missing)
    events = count_events(url)
    names = projections.names(service_env(url, "127.0.0.1:0", 1)) or ["all"]
    for name in names:
        done = projections.rebuild(url, name, events, logs)
        series = results.add(Series(f"Rebuild {name}", "operation", "events/s", "d_copy"))
        series.note = done.note
        if not done.ok:
            series.status = "failed"
            continue
        series.levels.append(
            scalar_row(
                done.events_per_s,
                events=done.events,
                seconds=done.seconds,
                cli_startup_s=done.startup,
            )
        )
        log.info(
            "%-24s %12.0f events/s (%d events, %.1f s)",
            series.name,
            done.events_per_s,
            events,
            done.seconds,
        )


# The throughput targets' (operation, ceiling), re-measured in pairs, ceiling first.
RECHECKS = (
    ("GetSeatAllowance", "b_select"),
    ("ActivateKey", "e_repository"),
    ("SeatLeasePair", "e_repository"),
)
RECHECK_ROUNDS = 3


def recheck(
    runner: Runner,
    results: Results,
    url: str,
    service: ProcessGroup,
    seeder: Seeder,
    workers: int,
    logs: Path,
) -> None:
    """Each throughput target again, RECHECK_ROUNDS times at the target concurrency, the
    ceiling measured right before its operation: on 2 shared cores a level measured minutes
    apart from its ceiling swings by ±20 %, a pair measured back to back much less. The
    median of the rounds' ratios is reported beside the main run's."""
    c = TARGET_CONCURRENCY
    for name, ceiling in RECHECKS:
        main = results.series.get(name)
        if main is None or main.status != OK or ceiling not in results.series:
            continue
        rounds: list[float] = []
        for n in range(1, RECHECK_ROUNDS + 1):
            suffix = f" recheck {n}"
            if ceiling == "e_repository":
                reference = results.add(Series(ceiling + suffix, "recheck"))
                runner.repository(reference, url, [c])
            else:
                rpc_ceilings(runner, results, url, workers, logs, [ceiling], [c], "recheck", suffix)
                reference = results.series[ceiling + suffix]
            measured = operation(
                runner, results, service, seeder, name, workers, [c], name + suffix, "recheck"
            )
            value = ratio(
                value_of(measured.at(c), "throughput"), value_of(reference.at(c), "throughput")
            )
            if value is not None:
                rounds.append(value)
        if rounds:
            results.rechecks.append(
                {
                    "operation": name,
                    "ceiling": ceiling,
                    "concurrency": c,
                    "rounds": rounds,
                    "median": statistics.median(rounds),
                }
            )
            log.info(
                "%s / %s, paired re-check: %s", name, ceiling, ", ".join(f"{r:.2f}" for r in rounds)
            )


def scaling(results: Results, workers: int, other: int) -> None:
    """Pair each read measured with `other` workers with the main run's figure."""
    for series in results.series.values():
        if series.kind != "scaling":
            continue
        base = results.series.get(series.name.split("@", 1)[0])
        for row in series.levels:
            ref = base.at(row["concurrency"]) if base else None
            one, two = (ref, row) if workers == 1 else (row, ref)
            t1 = one["throughput"] if one else None
            t2 = two["throughput"] if two else None
            results.scaling.append(
                {
                    "series": series.name.split("@", 1)[0],
                    "concurrency": row["concurrency"],
                    "workers_1": t1,
                    "workers_2": t2,
                    "ratio": (t2 / t1) if t1 and t2 else None,
                    "cpu_split": row.get("server_cpu_split"),
                    "note": f"main run with {workers} worker(s), comparison with {other}; "
                    "the load generator shares the same 2 cores",
                }
            )
