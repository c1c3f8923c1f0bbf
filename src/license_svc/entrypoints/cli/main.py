"""`license-svc`: the service's one command line.

license-svc serve                      a gRPC server replica
license-svc run                        development: server + projections + sweeper, embedded DB
license-svc dashboard [--listen H:P]   the ops dashboard page (http://127.0.0.1:8080/)
license-svc project [NAME ...]         a projection worker: keeps the views up to date
license-svc expire [--once]            the expiry sweeper
license-svc projections rebuild NAME   replay a view from position 0, then switch to it
license-svc projections list           the views, their live generation and position
license-svc projections prune [NAME]   drop the views' old generations that nothing uses
license-svc attempts lift|show|purge   lift a failed-attempt block, show an account's, retention
license-svc webhooks                   the webhook router and sender (rules §14)
license-svc migrate [--grant-… ROLE]   create/upgrade the schema as its owner; grant the roles
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from license_svc import bootstrap, config, logs, netaddr, startup
from license_svc.entrypoints import client
from license_svc.entrypoints.api.server import server_for
from license_svc.entrypoints.cli import attempts as attempt_commands
from license_svc.entrypoints.cli import migrate as migrate_command
from license_svc.entrypoints.client import webhooks as webhook_commands
from license_svc.entrypoints.dashboard.server import start_dashboard
from license_svc.entrypoints.health import start_health_endpoint
from license_svc.seats.sweeper import LeaseSweeper
from projections.registry import NAMES

log = logging.getLogger("license_svc")

# Background commands need few connections: the worker's runners have pools of their own.
SMALL_POOL: dict[str, int] = {"pool_size": 2, "pool_max_overflow": 4}


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


# Only the test suite's launcher (tests/offset_cli.py) sets this: the test-only clock offset
# is refused by every command otherwise, so no deployment can run with a shifted clock.
TEST_CLOCK_ALLOWED = False
_stopping = threading.Event()
_up = threading.Event()  # the command is up and waits for its stop signal
SIGNAL_POLL_SECONDS = 0.5


def _on_signal(signum: int, _frame: object) -> None:
    name = signal.Signals(signum).name
    if not _up.is_set():  # still starting: unwind now (what was built is closed on the way)
        log.info("received %s while starting: exiting", name)
        raise SystemExit(128 + signum)
    log.info("received %s: stopping", name)
    _stopping.set()


def _catch_stop_signals() -> None:
    """From the start of a long-running command on: a SIGTERM while it starts unwinds it (its
    `finally` blocks run, unlike the default action's kill); once up, it stops it cleanly."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def _wait_for_signal() -> None:
    """Until SIGTERM/SIGINT. The main thread wakes every SIGNAL_POLL_SECONDS: Python runs a
    signal's handler only between bytecodes of the main thread, and a wait without a timeout
    was once seen to sit through a SIGTERM for 90 s."""
    _catch_stop_signals()
    _up.set()
    while not _stopping.wait(SIGNAL_POLL_SECONDS):
        pass


def _settings(
    purpose: config.Purpose, log_format: str = "", changes: dict[str, int] | None = None
) -> config.Settings:
    """Every setting, validated before anything else happens (ConfigError → exit 2). Logging
    is set up before the first warning, so even that line is in the command's format."""
    settings = config.load(purpose=purpose)
    if settings.clock_offset_seconds and not TEST_CLOCK_ALLOWED:
        raise config.ConfigError(
            "LICENSE_SVC_CLOCK_OFFSET_SECONDS is for tests only: a command refuses to start"
            " with its clock shifted (unset it)"
        )
    if settings.log_format or log_format:  # the other commands log text unless told otherwise
        logs.setup(settings.log_format or log_format)
    for name in settings.unknown:
        log.warning("%s is not a setting license-svc knows: ignored (a typo?)", name)
    if settings.found_development:  # one line: what a maintenance command found by itself
        print(f"license-svc: {settings.found_development}", file=sys.stderr)
    return settings.with_(**changes) if changes else settings


@contextmanager
def _tool_service() -> Iterator[bootstrap.Service]:
    """The service of a one-shot maintenance command (a small pool), closed when it is done."""
    service = _service(_settings("tool", changes=SMALL_POOL))
    try:
        yield service
    finally:
        service.close()


def _service(settings: config.Settings) -> bootstrap.Service:
    """The database (embedded under `run`), waited for, then the wired service."""
    if settings.health_listen:
        startup.check_address(settings.health_listen, "LICENSE_SVC_HEALTH_LISTEN")
    settings = bootstrap.with_database(settings)
    return startup.start_when_reachable(settings, bootstrap.build)


def cmd_serve(args: argparse.Namespace) -> int:
    _catch_stop_signals()
    settings = _settings("dev" if args.dev else "service", "text" if args.dev else "json")
    tokens = startup.tokens_for(settings)
    keys = startup.signing_keys_for(settings)
    if settings.tokens_file is None:  # `run` with the published development tokens
        startup.check_loopback(settings.listen, "LICENSE_SVC_LISTEN")
        if settings.dashboard_listen:
            startup.check_loopback(settings.dashboard_listen, "LICENSE_SVC_DASHBOARD_LISTEN")
    startup.check_address(settings.listen, "LICENSE_SVC_LISTEN", settings.so_reuseport)
    if settings.metrics_listen:
        startup.check_address(settings.metrics_listen, "LICENSE_SVC_METRICS_LISTEN")
    service = _service(settings)
    settings = service.settings
    try:
        server = server_for(service, tokens, keys)
    except BaseException:
        service.close()
        raise
    if args.dev or settings.run_projections:
        bootstrap.start_projections(service)
    if args.dev or settings.run_sweeper:
        bootstrap.start_sweeper(service)
    if args.dev or settings.run_webhooks:
        bootstrap.start_webhooks(service)
    if args.dev and settings.dashboard_listen:
        start_dashboard(service, settings.dashboard_listen, tokens)
    # SIGHUP: re-read the tokens file, the signing keys and the TLS files, so who may call,
    # which key signs and the certificate change without a restart. Installed before the
    # server answers health checks: a SIGHUP's default action would kill it.
    signal.signal(signal.SIGHUP, lambda _signum, _frame: server.reload())
    server.start()
    start_health_endpoint(service)
    startup.settle_memory(settings.gc_threshold)
    bound = netaddr.HostPort(netaddr.parse(settings.listen).host, server.port)
    log.info(
        "license-svc %s: listening on %s (%s), database %s, %d tokens%s, signing key %s",
        "run" if args.dev else "serve",
        bound,
        settings.tls_mode(),
        settings.database_label(),
        tokens.size,
        " (DEVELOPMENT tokens)" if settings.tokens_file is None else "",
        keys.current.signing.kid if keys else "(none)",
    )
    _wait_for_signal()
    log.info("draining in-flight calls (grace %.1fs)", settings.grace_seconds)
    server.stop(settings.grace_seconds)
    service.close()
    log.info("stopped")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    _catch_stop_signals()
    settings = _settings("worker", changes=SMALL_POOL)
    listen = args.listen or settings.dashboard_listen
    if not listen:
        raise config.ConfigError("LICENSE_SVC_DASHBOARD_LISTEN is empty: give it an address")
    tokens = startup.tokens_for(settings)
    startup.check_address(listen, "LICENSE_SVC_DASHBOARD_LISTEN")
    service = _service(settings)
    start_dashboard(service, listen, tokens)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: tokens.reload())  # as `serve` does
    _wait_for_signal()
    service.close()
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    _catch_stop_signals()
    names = args.names or NAMES
    settings = _settings("worker", changes=SMALL_POOL)  # no pepper, no token table
    service = _service(settings)
    bootstrap.start_projections(service, names)
    start_health_endpoint(service)
    startup.settle_memory(settings.gc_threshold)  # a catch-up decodes events at a GIL's pace
    log.info(
        "projection worker running: %s; database %s", ", ".join(names), settings.database_label()
    )
    _wait_for_signal()
    service.close()
    return 0


def cmd_expire(args: argparse.Namespace) -> int:
    settings = _settings("worker", changes=SMALL_POOL)  # no pepper, no token table
    service = _service(settings)
    if args.once:
        sweep = service.sweeper().sweep_once()
        leases = LeaseSweeper(service.seats, settings.sweep_batch).sweep_once()
        print(f"expired {sweep.expired} of {sweep.due} due keys; {leases} lapsed seat leases")
        service.close()
        return 0
    bootstrap.start_sweeper(service)
    start_health_endpoint(service)
    log.info(
        "expiry sweeper running every %.0fs; database %s",
        settings.sweep_interval_seconds,
        settings.database_label(),
    )
    _wait_for_signal()
    service.close()
    return 0


def cmd_webhooks(args: argparse.Namespace) -> int:
    settings = _settings("service")
    # Each sending thread takes a connection to lease and to record (never while it waits for
    # a partner), beside the router and the reminders: the pool grows with the threads.
    settings = settings.with_(pool_size=2, pool_max_overflow=settings.webhook_threads + 2)
    startup.tokens_for(settings)
    service = _service(settings)
    bootstrap.start_webhooks(service)
    start_health_endpoint(service)
    log.info(
        "webhooks running: %d threads, %d per endpoint, private addresses %s; database %s",
        settings.webhook_threads,
        settings.webhook_per_endpoint,
        "allowed" if settings.webhook_allow_private else "refused",
        settings.database_label(),
    )
    _wait_for_signal()
    service.close()
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from projections.workers.rebuild import RebuildBusy, rebuild

    with _tool_service() as service:
        # A replay decodes every event of the store: a full collection every few thousand
        # events, scanning start-up's objects each time, cost it a fifth of its speed.
        startup.settle_memory(service.settings.gc_threshold)
        try:
            for name in NAMES if args.name == "all" else [args.name]:
                rebuild(
                    service.settings, service.datastore, service.app, name, keep_old=args.keep_old
                )
        except RebuildBusy as error:
            log.error("%s", error)
            return 1
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from projections.workers.prune import prune
    from projections.workers.rebuild import rebuilding

    with _tool_service() as service:
        for name in NAMES if args.name == "all" else [args.name]:
            with rebuilding(service.settings, name) as (conn, mine):
                if not mine:
                    print(f"{name}: a rebuild is running; try again after it")
                    continue
                print(prune(conn, service.settings, service.datastore, name).summary())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _tool_service() as service:
        head = service.app.recorder.max_notification_id() or 0
        for name, position in service.views.status():
            generation = service.views.live_generation(name)
            print(f"{name} generation={generation} position={position} head={head}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every command and option of the console script (a test checks each has help text)."""
    parser = argparse.ArgumentParser(prog="license-svc", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a gRPC server replica")
    serve.set_defaults(func=cmd_serve, dev=False)
    run = commands.add_parser("run", help="development: everything in one process")
    run.set_defaults(func=cmd_serve, dev=True)
    dashboard = commands.add_parser("dashboard", help="serve the ops dashboard page")
    dashboard.add_argument("--listen", default="", help="host:port (LICENSE_SVC_DASHBOARD_LISTEN)")
    dashboard.set_defaults(func=cmd_dashboard)
    project = commands.add_parser("project", help="run a projection worker")
    project.add_argument("names", nargs="*", metavar="NAME", help=f"views to keep: {NAMES}")
    project.set_defaults(func=cmd_project)
    expire = commands.add_parser("expire", help="run the expiry sweeper")
    expire.add_argument("--once", action="store_true", help="sweep once, then exit")
    expire.set_defaults(func=cmd_expire)
    views = commands.add_parser("projections", help="manage the projections' views")
    view_commands = views.add_subparsers(dest="projections_command", required=True)
    rebuild = view_commands.add_parser("rebuild", help="rebuild a view from position 0")
    rebuild.add_argument("name", choices=[*NAMES, "all"], help="the view to rebuild, or all")
    rebuild.add_argument("--keep-old", action="store_true", help="keep the replaced generation")
    rebuild.set_defaults(func=cmd_rebuild)
    prune = view_commands.add_parser("prune", help="drop old generations nothing uses")
    prune.add_argument(
        "name", nargs="?", default="all", choices=[*NAMES, "all"], help="the view, or all (all)"
    )
    prune.set_defaults(func=cmd_prune)
    view_commands.add_parser("list", help="list the views").set_defaults(func=cmd_list)
    view_commands.add_parser("run", help="the same as `project`").set_defaults(
        func=cmd_project, names=[]
    )
    client.register(commands)  # the people's client: keys, activate, …, audit
    attempt_commands.register(commands)  # support: lift a block, show, purge
    webhook_commands.register(commands).set_defaults(func=cmd_webhooks)
    migrate_command.register(commands)  # the schema's owner: create, upgrade, grant
    return parser


def main(argv: list[str] | None = None) -> int:
    _logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    if unknown := set(getattr(args, "names", [])) - set(NAMES):
        parser.error(f"unknown view(s): {', '.join(sorted(unknown))}; choose from {NAMES}")
    try:
        code: int = args.func(args)
    except config.ConfigError as error:
        return _fail(str(error), 2)
    except startup.DependencyDown as error:
        return _fail(str(error), 1)
    except Exception as error:  # never a traceback: one line; the details at debug level
        log.debug("failed", exc_info=error)
        return _fail(f"{type(error).__name__}: {startup.one_line(error)}", 1)
    return code


def _fail(message: str, code: int) -> int:
    """A failure is one line on stderr, written directly: it must read the same whatever the
    logging setup, and before it."""
    sys.stderr.write(f"license-svc: ERROR: {message}\n")
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
