"""All configuration, read once from `LICENSE_SVC_*` environment variables.

Nothing else in the service reads the environment. `Settings.eventsourcing_env()` translates
the database settings into the variables the `eventsourcing` library understands.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

PREFIX = "LICENSE_SVC_"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_TOKENS = REPO_ROOT / "deploy" / "dev" / "tokens.json"


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    listen: str = "127.0.0.1:50051"
    var_dir: Path = REPO_ROOT / "var"
    pepper: bytes = b""
    tokens_file: Path | None = None
    # Database pool and timeouts. The server's pool serves `grpc_workers` threads, each using one
    # connection at a time, so it is as large as the thread pool; the overflow is for work that
    # runs in-process beside them (the sweeper, projections under `run`).
    pool_size: int = 8
    pool_max_overflow: int = 4
    connect_timeout: float = 5.0
    lock_timeout: float = 5.0
    # gRPC. 8 threads, not more: every call is a few short Postgres round trips, so more threads
    # only contend for the GIL, and an ActivateKey holds the event table's lock while its thread
    # waits for the GIL between the insert and the COMMIT. Measured on 2 cores at concurrency 32
    # (make bench-quick): 16 threads did ~430 activations/s, 8 threads ~520; reads were no
    # slower. Fewer than 8 read faster still, but each min_position read that waits holds a
    # thread, so a lagging worker would starve a small pool sooner.
    grpc_workers: int = 8
    so_reuseport: bool = False  # several server processes on one port (bench --workers N)
    grace_seconds: float = 10.0
    max_message_bytes: int = 16 * 1024 * 1024
    max_wait_seconds: float = 10.0  # cap for min_position waits when the client set no deadline
    issue_concurrency: int = 2  # IssueKeys calls minting at once per process (memory bound)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set → mutual TLS
    # Failed-attempt limiter (rules §4)
    session_attempt_limit: int = 5
    session_block_seconds: int = 15 * 60
    account_attempt_limit: int = 20
    account_window_seconds: int = 60 * 60
    # Test-only: shifts this process's clock, to prove replicas whose host clocks disagree still
    # share one limit (the limiter counts on the database's clock). Never set it in production.
    clock_offset_seconds: float = 0.0
    attempt_retention_days: int = 90  # failed attempts and block lifts kept for the audit
    # Workers run inside the server process (`make run`) or as separate processes.
    run_projections: bool = False
    run_sweeper: bool = False
    sweep_interval_seconds: float = 30.0
    sweep_batch: int = 500  # due keys read from the catalog per query
    # Projections: how often a worker re-checks its lock and the live generation, and how often
    # a waiting read re-checks the view when no notification woke it (a safety net only).
    worker_poll_seconds: float = 0.5
    view_recheck_seconds: float = 0.5
    rebuild_switch_seconds: float = 30.0  # how long a rebuild's switch may wait for catch-up
    # Observability: Prometheus /metrics ("" = off; port 0 = any free port, logged), and the log
    # format ("" = the command's default: text under `run`, json under `serve`).
    metrics_listen: str = "127.0.0.1:9464"
    log_format: str = ""
    # Allowance and summary answers kept in each server process (LRU; 0 = no cache).
    cache_entries: int = 50_000
    # Streams (StreamEvents, WatchSeatAllowance) run on the server's event loop, not its threads:
    # at most `max_streams` at once per process; one that cannot hand a message to a client
    # for `stream_stall_seconds` is ended with a position to resume from. Their store reads use
    # `stream_read_threads` threads and connections of their own; the process's one follower
    # of the log keeps the newest `stream_window` events in memory for the live streams.
    max_streams: int = 200
    stream_stall_seconds: float = 30.0
    stream_read_threads: int = 2
    stream_window: int = 10_000
    # The ops dashboard page: served by `license-svc dashboard`, and inside `run` ("" = off).
    dashboard_listen: str = "127.0.0.1:8080"
    extra: Mapping[str, str] = field(default_factory=dict)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def eventsourcing_env(self) -> dict[str, str]:
        """The variables `eventsourcing.postgres` reads, derived from `database_url`, and the
        application's own (read by `LicensingApp` from the same environment)."""
        if not self.database_url:
            raise ConfigError("LICENSE_SVC_DATABASE_URL is not set and no embedded database runs")
        params = conninfo_to_dict(self.database_url)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": str(params.get("dbname", "postgres")),
            "POSTGRES_HOST": str(params.get("host", "127.0.0.1")),
            "POSTGRES_PORT": str(params.get("port", "5432")),
            "POSTGRES_USER": str(params.get("user", "postgres")),
            "POSTGRES_PASSWORD": str(params.get("password", "")),
            "POSTGRES_POOL_SIZE": str(self.pool_size),
            "POSTGRES_MAX_OVERFLOW": str(self.pool_max_overflow),
            "POSTGRES_CONNECT_TIMEOUT": str(int(max(1, self.connect_timeout))),
            "POSTGRES_LOCK_TIMEOUT": str(int(max(1, self.lock_timeout))),
            "POSTGRES_POOL_OPEN_TIMEOUT": str(int(max(1, self.connect_timeout))),
            "POSTGRES_SINGLE_ROW_TRACKING": "y",
            "ISSUE_CONCURRENCY": str(self.issue_concurrency),
        }
        env.update(self.extra)
        return env


def _int(env: Mapping[str, str], name: str, default: int, lo: int = 0) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None
    if value < lo:
        raise ConfigError(f"{PREFIX}{name} must be at least {lo}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on", "y"}


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(PREFIX + name, "").strip().lower()
    if raw and raw not in choices:
        raise ConfigError(f"{PREFIX}{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(PREFIX + name)
    return Path(raw) if raw else None


def _pepper(env: Mapping[str, str], var_dir: Path) -> bytes:
    """The server secret behind key lookup hashes. Production sets it; dev keeps one in var/."""
    raw = env.get(PREFIX + "PEPPER")
    if raw:
        return raw.encode()
    pepper_file = _path(env, "PEPPER_FILE")
    if pepper_file is not None:
        return pepper_file.read_bytes().strip()
    dev_file = var_dir / "pepper"
    if not dev_file.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        dev_file.write_text(secrets.token_hex(32))
        dev_file.chmod(0o600)
    return dev_file.read_bytes().strip()


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    var_dir = _path(env, "VAR_DIR") or Settings.var_dir
    pepper = _pepper(env, var_dir)
    if len(pepper) < 16:
        raise ConfigError(f"{PREFIX}PEPPER must be at least 16 bytes")
    return Settings(
        database_url=env.get(PREFIX + "DATABASE_URL", ""),
        listen=env.get(PREFIX + "LISTEN", Settings.listen),
        var_dir=var_dir,
        pepper=pepper,
        tokens_file=_path(env, "TOKENS_FILE"),
        pool_size=_int(env, "POOL_SIZE", Settings.pool_size, lo=1),
        pool_max_overflow=_int(env, "POOL_MAX_OVERFLOW", Settings.pool_max_overflow),
        connect_timeout=_float(env, "CONNECT_TIMEOUT", Settings.connect_timeout),
        lock_timeout=_float(env, "LOCK_TIMEOUT", Settings.lock_timeout),
        grpc_workers=_int(env, "GRPC_WORKERS", Settings.grpc_workers, lo=1),
        so_reuseport=_bool(env, "SO_REUSEPORT", False),
        grace_seconds=_float(env, "GRACE_SECONDS", Settings.grace_seconds),
        max_message_bytes=_int(env, "MAX_MESSAGE_BYTES", Settings.max_message_bytes, lo=1024),
        max_wait_seconds=_float(env, "MAX_WAIT_SECONDS", Settings.max_wait_seconds),
        issue_concurrency=_int(env, "ISSUE_CONCURRENCY", Settings.issue_concurrency, lo=1),
        tls_cert=_path(env, "TLS_CERT"),
        tls_key=_path(env, "TLS_KEY"),
        tls_client_ca=_path(env, "TLS_CLIENT_CA"),
        session_attempt_limit=_int(env, "SESSION_ATTEMPT_LIMIT", 5, lo=1),
        session_block_seconds=_int(env, "SESSION_BLOCK_SECONDS", 15 * 60, lo=1),
        account_attempt_limit=_int(env, "ACCOUNT_ATTEMPT_LIMIT", 20, lo=1),
        account_window_seconds=_int(env, "ACCOUNT_WINDOW_SECONDS", 60 * 60, lo=1),
        clock_offset_seconds=_float(env, "CLOCK_OFFSET_SECONDS", 0.0),
        attempt_retention_days=_int(env, "ATTEMPT_RETENTION_DAYS", 90, lo=1),
        run_projections=_bool(env, "RUN_PROJECTIONS", False),
        run_sweeper=_bool(env, "RUN_SWEEPER", False),
        sweep_interval_seconds=_float(env, "SWEEP_INTERVAL_SECONDS", 30.0),
        sweep_batch=_int(env, "SWEEP_BATCH", Settings.sweep_batch, lo=1),
        worker_poll_seconds=_float(env, "WORKER_POLL_SECONDS", Settings.worker_poll_seconds),
        view_recheck_seconds=_float(env, "VIEW_RECHECK_SECONDS", Settings.view_recheck_seconds),
        rebuild_switch_seconds=_float(
            env, "REBUILD_SWITCH_SECONDS", Settings.rebuild_switch_seconds
        ),
        metrics_listen=env.get(PREFIX + "METRICS_LISTEN", Settings.metrics_listen).strip(),
        dashboard_listen=env.get(PREFIX + "DASHBOARD_LISTEN", Settings.dashboard_listen).strip(),
        log_format=_choice(env, "LOG_FORMAT", ("text", "json")),
        cache_entries=_int(env, "CACHE_ENTRIES", Settings.cache_entries),
        max_streams=_int(env, "MAX_STREAMS", Settings.max_streams, lo=0),
        stream_stall_seconds=_float(env, "STREAM_STALL_SECONDS", Settings.stream_stall_seconds),
        stream_read_threads=_int(env, "STREAM_READ_THREADS", Settings.stream_read_threads, lo=1),
        stream_window=_int(env, "STREAM_WINDOW", Settings.stream_window, lo=1),
    )


@dataclass(frozen=True)
class ClientSettings:
    """What the people's client (`license-svc keys …`, `audit …`) reads: where, and as whom."""

    target: str = "127.0.0.1:50051"
    token: str = ""


def load_client(env: Mapping[str, str] | None = None) -> ClientSettings:
    env = os.environ if env is None else env
    return ClientSettings(
        target=env.get(PREFIX + "TARGET") or ClientSettings.target,
        token=env.get(PREFIX + "TOKEN", "").strip(),
    )
