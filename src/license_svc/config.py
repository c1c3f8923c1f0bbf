"""All configuration, read once from `LICENSE_SVC_*` environment variables, and checked.

Nothing else in the service reads the environment. `load()` validates every setting before the
service does anything and raises `ConfigError` naming the first bad one (the CLI prints it as
one line and exits 2). What a command needs depends on its purpose, and it is given no more
(least privilege): `serve` needs an explicit pepper and token file, and only `run`
(development) invents them; `project`, `expire` and `dashboard` neither mint nor look up codes,
so they need no pepper (the dashboard reads the token table to sign people in); the maintenance
tools (`migrate`, `projections …`) need neither.

`Settings.eventsourcing_env()` translates the database settings into the variables the
`eventsourcing` library understands; `Settings.conninfo()` is the URL with the service's
connection options, for the few connections opened outside the library's pools.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal, TypeVar

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from license_svc import netaddr

PREFIX = "LICENSE_SVC_"
# The development tokens ship inside the package (the same content as deploy/dev/tokens.json),
# so an installed `license-svc run` finds them; production commands never read them.
DEV_TOKENS = Path(__file__).resolve().parent / "dev_tokens.json"
# Read by the test suite and the bench, not by the service: not reported as unknown.
# The client's settings (`load_client`) are not the service's either.
TEST_PREFIX = PREFIX + "TEST_"  # the test suite's own switches (LICENSE_SVC_TEST_*)
# TCP keepalives of every database connection, on both ends: a peer silent for
# KEEPALIVE_IDLE seconds is probed every KEEPALIVE_INTERVAL seconds and dropped after
# KEEPALIVE_COUNT unanswered probes: KEEPALIVE_BOUND seconds of silence at most.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 2, 2
KEEPALIVE_BOUND = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT
# What a stream reader's round trip may take past the statement timeout before the client ends
# its connection itself (the server's own timeout answers first unless no byte can pass).
ROUND_TRIP_GRACE = 2.0
MAX_TOKEN_TTL = 86_400  # a token outlives an outage of minutes, not a subscription's change
FOREIGN = frozenset({PREFIX + "TEST_DATABASE_URL", PREFIX + "TARGET", PREFIX + "TOKEN"})

# dev: `run` (embedded database, a dev pepper, the dev tokens); service: `serve` (an explicit
# pepper and token file); worker: `project`, `expire`, `dashboard` and tool: `migrate`,
# `projections …` (no secret required; a pepper given is still checked against the store's).
Purpose = Literal["dev", "service", "worker", "tool"]
NEEDS_PEPPER: frozenset[str] = frozenset({"dev", "service"})


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


HIDDEN = "<hidden>"
SECRET_WORDS = ("PASSWORD", "PEPPER", "TOKEN", "SECRET")


@dataclass(frozen=True, repr=False)  # the repr hides the secrets: see `__repr__`
class Settings:
    database_url: str = ""
    listen: str = "127.0.0.1:50051"
    var_dir: Path = Path("var")  # development only (`run`): relative to the working directory
    pepper: bytes = b""
    tokens_file: Path | None = None
    dev: bool = False  # made for `license-svc run`: development secrets allowed
    found_development: str = ""  # a maintenance command found `run`'s var/: says what it uses
    startup_wait_seconds: float = 30.0  # how long start-up waits for the database (then exit 1)
    # Database pool and timeouts. The server's pool serves `grpc_workers` threads, each using one
    # connection at a time, so it is as large as the thread pool; the overflow is for work that
    # runs in-process beside them (the sweeper, projections under `run`).
    pool_size: int = 8
    pool_max_overflow: int = 4
    # Seat heartbeats (RenewSeats) run on the event loop, on a pool of their own of at most
    # this many connections (opened at the first heartbeat, one kept); the rest wait their turn
    # on the loop, first come first served. Few on purpose: the statements' work shares the
    # cores with the server, so more at once only lengthens each. Measured at c=8 (make bench,
    # 2 cores): 1 → 680/s, p99 15.5 ms; 2 → 750–850/s, 14–15 ms; 3 → 890–930/s, 14.5–16 ms;
    # 4 → 840–880/s, 17–24 ms; 8 → 890/s, 36–41 ms.
    heartbeat_connections: int = 2
    connect_timeout: float = 5.0
    lock_timeout: float = 5.0
    # Outages: no call waits long for the database. A pool checkout waits at most
    # `pool_timeout`; the server bounds every statement and every idle transaction; a
    # background check every `health_interval_seconds` turns health NOT_SERVING, and then
    # calls are answered UNAVAILABLE at once (`license_svc.adapters.dbhealth`).
    pool_timeout: float = 0.5
    statement_timeout: float = 10.0
    idle_in_transaction_timeout: float = 10.0
    health_interval_seconds: float = 0.5
    health_failures: int = 3  # failed checks in a row before NOT_SERVING (one good one is back)
    # One clock: the health check also measures this process's clock against the database's;
    # further off than this, the replica is NOT_SERVING (its instants would disagree).
    max_clock_offset_ms: int = 500
    health_listen: str = ""  # a plaintext gRPC health endpoint for probes (any command)
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
    # Group commit: the saves of one process that wait at the same moment share one transaction
    # (one table lock, one NOTIFY, one commit), each keeping its own outcome
    # (`license_svc.adapters.groupcommit`). Off: each save is a transaction of its own.
    group_commit: bool = True
    issue_replay_hours: float = 72.0  # how long an IssueKeys request id replays its codes
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
    # /metrics reads the store and the views as this role (the read-only one), not as the
    # service's ("" = the service's own connections).
    metrics_database_url: str = ""
    # View reads (allowance and summary misses, catalog, ops reads) from a standby, e.g. a
    # `-ro` service or `target_session_attrs=prefer-standby` ("" = the primary's pools). Never
    # older than a `min_position` the caller passes; a read the standby fails is read on the
    # primary. Writes, LISTEN and the store's log stay on `database_url`.
    read_database_url: str = ""
    log_format: str = ""
    # Allowance and summary answers kept in each server process (LRU; 0 = no cache).
    cache_entries: int = 50_000
    # Streams (StreamEvents, WatchSeatAllowance) run on the server's event loop, not its threads:
    # at most `max_streams` at once per process; one that cannot hand a message to a client
    # for `stream_stall_seconds` is ended with a position to resume from. Their store reads use
    # `stream_read_threads` threads and connections of their own; the process's one follower
    # of the log keeps the newest `stream_window` events in memory for the live streams.
    max_streams: int = 200
    # One caller (a token or certificate identity) holds at most this share of `max_streams`,
    # so a runaway follower cannot take every slot from the others.
    stream_share_percent: int = 50
    stream_stall_seconds: float = 30.0
    stream_read_threads: int = 2
    stream_window: int = 10_000
    # The server's cyclic garbage collector (`startup.settle_memory`): allocations between two
    # collections of the youngest generation (Python's own is 700; 0 = leave Python's settings).
    gc_threshold: int = 50_000
    # The ops dashboard page: served by `license-svc dashboard`, and inside `run` ("" = off).
    dashboard_listen: str = "127.0.0.1:8080"
    # Allowance tokens (rules §13). Only the paths are kept here, never the key: a repr of the
    # settings (a log line, a traceback) cannot show it. `serve` refuses to start without the
    # signing key; `run` makes a development one in var/. The retired files hold public keys
    # still published until the tokens they signed have expired.
    signing_key_file: Path | None = None
    retired_signing_keys: tuple[Path, ...] = ()
    allowance_token_ttl_seconds: int = 900
    # Webhooks (rules §14): the router, reminders and sender run in `license-svc webhooks`, in
    # `run`, and in `serve` when `run_webhooks`. Private and plain-http URLs only when allowed
    # (development). An attempt's connect, write and read each wait at most the timeout; a
    # process sends on `webhook_threads` threads, at most `webhook_per_endpoint` per endpoint;
    # a failed delivery is retried with backoff from `webhook_retry_base_seconds` (doubling,
    # capped at 6 hours) for `webhook_retry_window_hours` (at least 72).
    run_webhooks: bool = False
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = 10.0
    webhook_threads: int = 16
    webhook_per_endpoint: int = 4
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_window_hours: float = 72.0
    webhook_poll_seconds: float = 0.5
    webhook_remind_interval_seconds: float = 60.0
    webhook_retention_days: int = 30  # finished deliveries and their attempts kept
    unknown: tuple[str, ...] = ()  # LICENSE_SVC_* variables that are set but unknown (typos)
    extra: Mapping[str, str] = field(default_factory=dict)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        """Every setting but the secrets: a log line or a traceback that prints the settings
        shows which database (never its password) and whether there is a pepper (never it)."""
        shown = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.endswith("database_url"):
                value = _url_without_password(value)
            elif item.name == "pepper":
                value = HIDDEN if value else ""
            elif item.name == "extra":
                value = {k: HIDDEN if _secret(k) else v for k, v in value.items()}
            shown.append(f"{item.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def eventsourcing_env(self) -> dict[str, str]:
        """The variables `eventsourcing.postgres` reads, derived from `database_url`, and the
        application's own (read by `LicensingApp` from the same environment)."""
        if not self.database_url:
            raise ConfigError(f"{PREFIX}DATABASE_URL is not set and no embedded database runs")
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
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": str(
                int(max(1, self.idle_in_transaction_timeout))
            ),
            "POSTGRES_SINGLE_ROW_TRACKING": "y",
            "ISSUE_CONCURRENCY": str(self.issue_concurrency),
            "GROUP_COMMIT": "y" if self.group_commit else "n",
            "ISSUE_REPLAY_HOURS": repr(self.issue_replay_hours),
            # Read by `license_svc.adapters.pools` when it hardens the library's pools.
            # The URL's own options ride along (`target_session_attrs=read-write` above all:
            # without it a pool may connect to a standby still in recovery after a failover).
            "SERVICE_CONNECT_OPTIONS": make_conninfo(
                "", **{**url_options(params), **self.connect_options()}
            ),
            "SERVICE_STATEMENT_TIMEOUT_MS": str(int(self.statement_timeout * 1000)),
        }
        env.update(self.extra)
        return env

    @property
    def settle_seconds(self) -> float:
        """How far back an instant is settled: an event stamped before it has committed by now
        (a writer waits at most the lock timeout; its clock may be the max offset behind)."""
        return self.lock_timeout + self.max_clock_offset_ms / 1000

    def connect_options(self) -> dict[str, str | int]:
        """libpq options for every connection the service opens: a short connect timeout, TCP
        keepalives and a user timeout on both ends of the connection (a dead peer is noticed in
        seconds, not hours), and the server-side statement timeout.

        The server's end matters as much as ours: a replica cut off mid-transaction may hold
        the events table's lock, and PostgreSQL notices a silent client only through its own
        socket (keepalives while it waits to read, the user timeout while it sends) or the
        idle-in-transaction timeout. These are per-session settings, so the service sets them
        itself rather than relying on the server's configuration: a silent peer is dropped
        after KEEPALIVE_BOUND seconds of silence at most."""
        user_timeout_ms = int(max(1.0, self.statement_timeout) * 1000)
        keepalive = (KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        server_side = (
            f"-c statement_timeout={int(self.statement_timeout * 1000)}"
            " -c tcp_keepalives_idle={} -c tcp_keepalives_interval={}"
            " -c tcp_keepalives_count={}".format(*keepalive)
            + f" -c tcp_user_timeout={user_timeout_ms}"
        )
        return {
            "connect_timeout": int(max(2, self.connect_timeout)),
            "keepalives": 1,
            "keepalives_idle": KEEPALIVE_IDLE,
            "keepalives_interval": KEEPALIVE_INTERVAL,
            "keepalives_count": KEEPALIVE_COUNT,
            "tcp_user_timeout": user_timeout_ms,
            "options": server_side,
        }

    def conninfo(self) -> str:
        """`database_url` with `connect_options()`: for connections outside the pools."""
        return make_conninfo(self.database_url, **self.connect_options())

    def database_label(self) -> str:
        """host:port/dbname, for logs (never the password)."""
        return database_label(self.database_url)

    def tls_mode(self) -> str:
        if self.tls_cert is None:
            return "plaintext"
        return "mutual TLS" if self.tls_client_ca else "TLS"


# What the library's pools are given one by one (POSTGRES_*); every other option of the URL
# (target_session_attrs, sslmode, load_balance_hosts, ...) goes through SERVICE_CONNECT_OPTIONS.
_POOL_FIELDS = frozenset({"dbname", "host", "port", "user", "password"})


def url_options(params: Mapping[str, object]) -> dict[str, str]:
    """A parsed database URL's options other than where and who to connect as."""
    return {k: str(v) for k, v in params.items() if k not in _POOL_FIELDS and v is not None}


def _secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def _url_without_password(url: str) -> str:
    if not url:
        return url
    try:
        params = conninfo_to_dict(url)
    except ProgrammingError:
        return HIDDEN  # malformed: it may hold the password anywhere
    user = params.get("user") or ""
    return f"postgresql://{user}{':' + HIDDEN if params.get('password') else ''}@" + (
        database_label(url)
    )


def database_label(url: str) -> str:
    if not url:
        return "(none)"
    params = conninfo_to_dict(url)
    hosts = str(params.get("host") or "localhost").split(",")
    ports = [port or "5432" for port in str(params.get("port") or "").split(",")]
    if len(ports) == 1:  # libpq: one port for every host
        ports = ports * len(hosts)
    dbname = params.get("dbname") or params.get("user") or ""
    where = ",".join(f"{host}:{port}" for host, port in zip(hosts, ports, strict=False))
    return f"{where}/{dbname}"


N = TypeVar("N", int, float)


def _set(env: Mapping[str, str], name: str) -> str | None:
    """The setting's text; None when it is unset or empty (its default applies)."""
    raw = env.get(PREFIX + name)
    return None if raw is None or raw == "" else raw


def _number(name: str, raw: str, parse: Callable[[str], N], kind: str) -> N:
    try:
        return parse(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be {kind}, got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int, lo: int = 0) -> int:
    raw = _set(env, name)
    if raw is None:
        return default
    value = _number(name, raw, int, "an integer")
    if value < lo:
        raise ConfigError(f"{PREFIX}{name} must be at least {lo}, got {value}")
    return value


def _percent(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default, lo=1)
    if value > 100:
        raise ConfigError(f"{PREFIX}{name} must be a percentage from 1 to 100, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float = 0.0) -> float:
    raw = _set(env, name)
    if raw is None:
        return default
    value = _number(name, raw, float, "a number")
    if not lo <= value < float("inf"):  # also refuses nan
        raise ConfigError(f"{PREFIX}{name} must be a number of at least {lo:g}, got {raw}")
    return value


TRUE = frozenset({"1", "true", "yes", "on", "y"})
FALSE = frozenset({"0", "false", "no", "off", "n"})


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _set(env, name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word not in TRUE | FALSE:
        raise ConfigError(
            f"{PREFIX}{name} must be true or false (1/0, yes/no, on/off), got {raw!r}"
        )
    return word in TRUE


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(PREFIX + name, "").strip().lower()
    if raw and raw not in choices:
        raise ConfigError(f"{PREFIX}{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(PREFIX + name)
    return Path(raw) if raw else None


def _file(env: Mapping[str, str], name: str) -> Path | None:
    """A path that must name a readable file."""
    path = _path(env, name)
    if path is not None:
        _read(path, PREFIX + name)
    return path


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{setting}: no such file {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{setting}: {path} is a directory, not a file") from None
    except OSError as error:
        raise ConfigError(f"{setting}: cannot read {path}: {error.strerror}") from None


def _address(env: Mapping[str, str], name: str, default: str) -> str:
    """host:port (IPv6 as [addr]:port) with a port from 0 to 65535; "" stays "" (off)."""
    raw = env.get(PREFIX + name)
    raw = (default if raw is None else raw).strip()  # set to "" = off
    if not raw:
        return raw
    try:
        netaddr.parse(raw)
    except ValueError as error:
        raise ConfigError(f"{PREFIX}{name} {error}") from None
    return raw


def _database_url(env: Mapping[str, str], purpose: Purpose, found: DevelopmentVar | None) -> str:
    url = (env.get(PREFIX + "DATABASE_URL") or "").strip()
    if not url and found is not None:
        return found.database_url
    if not url:
        if purpose != "dev":
            raise ConfigError(
                f"{PREFIX}DATABASE_URL is not set (only `license-svc run` embeds a database;"
                " the maintenance commands find it when run beside its running var/)"
            )
        return url
    try:
        conninfo_to_dict(url)
    except ProgrammingError:
        # psycopg's message quotes the text, which may hold the password: not repeated here.
        raise ConfigError(
            f"{PREFIX}DATABASE_URL is malformed:"
            " expected postgresql://user:password@host:port/dbname"
        ) from None
    return url


def _optional_url(env: Mapping[str, str], name: str) -> str:
    url = (env.get(PREFIX + name) or "").strip()
    if url:
        try:
            conninfo_to_dict(url)
        except ProgrammingError:
            raise ConfigError(
                f"{PREFIX}{name} is malformed (not repeated: it may hold a password)"
            ) from None
    return url


def _pepper(
    env: Mapping[str, str], var_dir: Path, purpose: Purpose, found: DevelopmentVar | None = None
) -> bytes:
    """The server secret behind key lookup hashes. Production sets it; only `run` keeps a
    development one in var/."""
    raw = env.get(PREFIX + "PEPPER")
    pepper_file = _path(env, "PEPPER_FILE")
    if raw and pepper_file is not None:
        raise ConfigError(f"{PREFIX}PEPPER and {PREFIX}PEPPER_FILE are both set: set one")
    if raw:
        pepper, setting = raw.encode(), PREFIX + "PEPPER"
    elif pepper_file is not None:
        setting = PREFIX + "PEPPER_FILE"
        pepper = _read(pepper_file, setting).strip()
    elif purpose == "dev":
        pepper, setting = _dev_pepper(var_dir), str(var_dir / "pepper")
    elif purpose not in NEEDS_PEPPER:
        return b""  # this command mints and looks up no code: it holds no pepper
    elif found is not None:
        pepper, setting = _read(found.pepper_file, str(found.pepper_file)).strip(), "var/pepper"
    else:
        raise ConfigError(
            f"{PREFIX}PEPPER (or {PREFIX}PEPPER_FILE) is not set: `serve` needs the store's"
            " pepper; only `license-svc run` makes a development one"
        )
    if len(pepper) < 16:
        raise ConfigError(f"{setting}: the pepper must be at least 16 bytes, got {len(pepper)}")
    return pepper


def _dev_pepper(var_dir: Path) -> bytes:
    def create(path: Path) -> None:
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)

    return _kept_in_var(var_dir, "pepper", "pepper", create, lambda path: path.read_bytes().strip())


T = TypeVar("T")


def _kept_in_var(
    var_dir: Path, name: str, what: str, create: Callable[[Path], None], use: Callable[[Path], T]
) -> T:
    """A development file in var/ (`run` only): made once, then kept; any OSError is a
    ConfigError naming it."""
    dev_file = var_dir / name
    try:
        if not dev_file.exists():
            var_dir.mkdir(parents=True, exist_ok=True)
            create(dev_file)
        return use(dev_file)
    except OSError as error:
        raise ConfigError(
            f"{PREFIX}VAR_DIR: cannot keep the development {what} in {var_dir}: {error.strerror}"
        ) from None


def _signing_key_file(env: Mapping[str, str], var_dir: Path, purpose: Purpose) -> Path | None:
    """The signing key's file (its content is checked where it is parsed, `startup`); only
    `run` makes a development key, in var/, as it makes the development pepper."""
    path = _file(env, "SIGNING_KEY_FILE")
    if path is None and purpose == "dev":
        path = _dev_signing_key(var_dir)
    return path


def _dev_signing_key(var_dir: Path) -> Path:
    return _kept_in_var(var_dir, "signing-key.pem", "signing key", write_signing_key, lambda p: p)


def write_signing_key(path: Path) -> None:
    """A new Ed25519 private key in PEM, readable by its owner only (development, tests)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(pem)


def temporary_signing_key(prefix: str) -> Path:
    """A new signing key in a new temporary folder, removed at exit: no key is left behind in
    /tmp (tests, benches)."""
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "signing-key.pem"
    write_signing_key(path)
    return path


def _retired_signing_keys(env: Mapping[str, str]) -> tuple[Path, ...]:
    """Comma-separated files of public keys still published (each must be readable)."""
    raw = env.get(PREFIX + "RETIRED_SIGNING_KEYS") or ""
    paths = tuple(Path(part.strip()) for part in raw.split(",") if part.strip())
    for path in paths:
        _read(path, PREFIX + "RETIRED_SIGNING_KEYS")
    return paths


def _token_ttl(env: Mapping[str, str]) -> int:
    ttl = _int(env, "ALLOWANCE_TOKEN_TTL_SECONDS", Settings.allowance_token_ttl_seconds, lo=1)
    if ttl > MAX_TOKEN_TTL:
        raise ConfigError(
            f"{PREFIX}ALLOWANCE_TOKEN_TTL_SECONDS must be at most {MAX_TOKEN_TTL} (a day),"
            f" got {ttl}"
        )
    return ttl


def _tokens_file(env: Mapping[str, str], purpose: Purpose) -> Path | None:
    path = _file(env, "TOKENS_FILE")
    if path is None and purpose == "service":
        raise ConfigError(
            f"{PREFIX}TOKENS_FILE is not set: `serve` needs a token file;"
            " only `license-svc run` uses the development tokens"
        )
    return path  # its content is checked where it is parsed (`bootstrap.tokens_for`)


def _tls(env: Mapping[str, str]) -> tuple[Path | None, Path | None, Path | None]:
    """Half a TLS configuration is an error, never a silent fall-back to plaintext."""
    cert, key, ca = _file(env, "TLS_CERT"), _file(env, "TLS_KEY"), _file(env, "TLS_CLIENT_CA")
    if (cert is None) != (key is None):
        have, missing = ("TLS_CERT", "TLS_KEY") if key is None else ("TLS_KEY", "TLS_CERT")
        raise ConfigError(f"{PREFIX}{have} is set without {PREFIX}{missing}: set both, or neither")
    if ca is not None and cert is None:
        raise ConfigError(
            f"{PREFIX}TLS_CLIENT_CA is set without {PREFIX}TLS_CERT and {PREFIX}TLS_KEY:"
            " mutual TLS needs the server's own certificate and key"
        )
    for name, path in (("TLS_CERT", cert), ("TLS_KEY", key), ("TLS_CLIENT_CA", ca)):
        if path is not None and b"-----BEGIN" not in path.read_bytes():
            raise ConfigError(f"{PREFIX}{name}: {path} is not a PEM file")
    return cert, key, ca


class _Recording(Mapping[str, str]):
    """The environment, remembering which names were read: the others set are unknown."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)

    def unknown(self) -> tuple[str, ...]:
        known = self.read | FOREIGN
        return tuple(
            sorted(
                k
                for k in self._env
                if k.startswith(PREFIX) and k not in known and not k.startswith(TEST_PREFIX)
            )
        )


def load(env: Mapping[str, str] | None = None, *, purpose: Purpose = "service") -> Settings:
    """Every setting, validated; raises ConfigError naming the first bad one."""
    env = _Recording(os.environ if env is None else env)
    var_dir = _path(env, "VAR_DIR") or Path.cwd() / Settings.var_dir
    found = (
        development_var(var_dir)
        if purpose == "tool" and not env.get(PREFIX + "DATABASE_URL")
        else None
    )
    database_url = _database_url(env, purpose, found)
    pepper = _pepper(env, var_dir, purpose, found)
    tokens_file = _tokens_file(env, purpose)
    signing_key_file = _signing_key_file(env, var_dir, purpose)
    tls_cert, tls_key, tls_client_ca = _tls(env)
    settings = Settings(
        database_url=database_url,
        listen=_address(env, "LISTEN", Settings.listen) or Settings.listen,
        var_dir=var_dir,
        pepper=pepper,
        tokens_file=tokens_file,
        dev=purpose == "dev",
        found_development=found.describe() if found is not None else "",
        startup_wait_seconds=_float(env, "STARTUP_WAIT_SECONDS", Settings.startup_wait_seconds),
        pool_size=_int(env, "POOL_SIZE", Settings.pool_size, lo=1),
        heartbeat_connections=_int(
            env, "HEARTBEAT_CONNECTIONS", Settings.heartbeat_connections, lo=1
        ),
        pool_max_overflow=_int(env, "POOL_MAX_OVERFLOW", Settings.pool_max_overflow),
        connect_timeout=_float(env, "CONNECT_TIMEOUT", Settings.connect_timeout, lo=1),
        lock_timeout=_float(env, "LOCK_TIMEOUT", Settings.lock_timeout, lo=0.1),
        pool_timeout=_float(env, "POOL_TIMEOUT", Settings.pool_timeout, lo=0.05),
        statement_timeout=_float(env, "STATEMENT_TIMEOUT", Settings.statement_timeout, lo=0.1),
        idle_in_transaction_timeout=_float(
            env, "IDLE_IN_TRANSACTION_TIMEOUT", Settings.idle_in_transaction_timeout, lo=1
        ),
        health_interval_seconds=_float(
            env, "HEALTH_INTERVAL_SECONDS", Settings.health_interval_seconds, lo=0.05
        ),
        health_failures=_int(env, "HEALTH_FAILURES", Settings.health_failures, lo=1),
        max_clock_offset_ms=_int(env, "MAX_CLOCK_OFFSET_MS", Settings.max_clock_offset_ms, lo=1),
        health_listen=_address(env, "HEALTH_LISTEN", ""),
        grpc_workers=_int(env, "GRPC_WORKERS", Settings.grpc_workers, lo=1),
        so_reuseport=_bool(env, "SO_REUSEPORT", False),
        grace_seconds=_float(env, "GRACE_SECONDS", Settings.grace_seconds),
        max_message_bytes=_int(env, "MAX_MESSAGE_BYTES", Settings.max_message_bytes, lo=1024),
        max_wait_seconds=_float(env, "MAX_WAIT_SECONDS", Settings.max_wait_seconds),
        issue_concurrency=_int(env, "ISSUE_CONCURRENCY", Settings.issue_concurrency, lo=1),
        group_commit=_bool(env, "GROUP_COMMIT", Settings.group_commit),
        issue_replay_hours=_float(env, "ISSUE_REPLAY_HOURS", Settings.issue_replay_hours),
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        session_attempt_limit=_int(env, "SESSION_ATTEMPT_LIMIT", 5, lo=1),
        session_block_seconds=_int(env, "SESSION_BLOCK_SECONDS", 15 * 60, lo=1),
        account_attempt_limit=_int(env, "ACCOUNT_ATTEMPT_LIMIT", 20, lo=1),
        account_window_seconds=_int(env, "ACCOUNT_WINDOW_SECONDS", 60 * 60, lo=1),
        clock_offset_seconds=_float(env, "CLOCK_OFFSET_SECONDS", 0.0, lo=-float("inf")),
        attempt_retention_days=_int(env, "ATTEMPT_RETENTION_DAYS", 90, lo=1),
        run_projections=_bool(env, "RUN_PROJECTIONS", False),
        run_sweeper=_bool(env, "RUN_SWEEPER", False),
        sweep_interval_seconds=_float(env, "SWEEP_INTERVAL_SECONDS", 30.0, lo=0.01),
        sweep_batch=_int(env, "SWEEP_BATCH", Settings.sweep_batch, lo=1),
        worker_poll_seconds=_float(
            env, "WORKER_POLL_SECONDS", Settings.worker_poll_seconds, lo=0.01
        ),
        view_recheck_seconds=_float(
            env, "VIEW_RECHECK_SECONDS", Settings.view_recheck_seconds, lo=0.01
        ),
        rebuild_switch_seconds=_float(
            env, "REBUILD_SWITCH_SECONDS", Settings.rebuild_switch_seconds
        ),
        metrics_listen=_address(env, "METRICS_LISTEN", Settings.metrics_listen),
        metrics_database_url=_optional_url(env, "METRICS_DATABASE_URL"),
        read_database_url=_optional_url(env, "READ_DATABASE_URL"),
        dashboard_listen=_address(env, "DASHBOARD_LISTEN", Settings.dashboard_listen),
        log_format=_choice(env, "LOG_FORMAT", ("text", "json")),
        cache_entries=_int(env, "CACHE_ENTRIES", Settings.cache_entries),
        max_streams=_int(env, "MAX_STREAMS", Settings.max_streams, lo=0),
        stream_share_percent=_percent(env, "STREAM_SHARE_PERCENT", Settings.stream_share_percent),
        stream_stall_seconds=_float(env, "STREAM_STALL_SECONDS", Settings.stream_stall_seconds),
        stream_read_threads=_int(env, "STREAM_READ_THREADS", Settings.stream_read_threads, lo=1),
        stream_window=_int(env, "STREAM_WINDOW", Settings.stream_window, lo=1),
        gc_threshold=_int(env, "GC_THRESHOLD", Settings.gc_threshold),
        signing_key_file=signing_key_file,
        retired_signing_keys=_retired_signing_keys(env),
        allowance_token_ttl_seconds=_token_ttl(env),
        run_webhooks=_bool(env, "RUN_WEBHOOKS", False),
        webhook_allow_private=_bool(env, "WEBHOOK_ALLOW_PRIVATE", purpose == "dev"),
        webhook_timeout_seconds=_float(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0, lo=0.1),
        webhook_threads=_int(env, "WEBHOOK_THREADS", Settings.webhook_threads, lo=1),
        webhook_per_endpoint=_int(env, "WEBHOOK_PER_ENDPOINT", Settings.webhook_per_endpoint, lo=1),
        webhook_retry_base_seconds=_float(env, "WEBHOOK_RETRY_BASE_SECONDS", 5.0, lo=0.01),
        webhook_retry_window_hours=_float(env, "WEBHOOK_RETRY_WINDOW_HOURS", 72.0, lo=72.0),
        webhook_poll_seconds=_float(env, "WEBHOOK_POLL_SECONDS", 0.5, lo=0.01),
        webhook_remind_interval_seconds=_float(
            env, "WEBHOOK_REMIND_INTERVAL_SECONDS", 60.0, lo=0.01
        ),
        webhook_retention_days=_int(env, "WEBHOOK_RETENTION_DAYS", 30, lo=4),
    )
    return settings.with_(unknown=env.unknown())


@dataclass(frozen=True)
class DevelopmentVar:
    """The var/ of a running `license-svc run` (its embedded PostgreSQL is up and its pepper is
    there): the maintenance commands and the client use it when nothing else is set, so they
    work against `make run` as they are. Production has no such folder (its database is a URL,
    its pepper a secret), so production commands still demand their settings."""

    var_dir: Path
    socket_dir: str
    port: str

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres:@/postgres?host={self.socket_dir}&port={self.port}"

    @property
    def pepper_file(self) -> Path:
        return self.var_dir / "pepper"

    def describe(self) -> str:
        return (
            f"development: using `license-svc run`'s var/ at {self.var_dir}"
            f" (database socket {self.socket_dir}, pepper {self.pepper_file})"
        )


def development_var(var_dir: Path) -> DevelopmentVar | None:
    """`run`'s var/ when its embedded PostgreSQL is running (postmaster.pid names the socket:
    line 4 the port, line 5 the socket folder) and its development pepper exists."""
    try:
        lines = (var_dir / "pg" / "postmaster.pid").read_text().splitlines()
        if not (var_dir / "pepper").is_file() or len(lines) < 5:
            return None
        os.kill(int(lines[0]), 0)  # a stale file of a stopped server is not a database
    except PermissionError:  # the server runs as another user (embedded as root): it is alive
        pass
    except (OSError, ValueError):
        return None
    return DevelopmentVar(var_dir.resolve(), lines[4].strip(), lines[3].strip())


@dataclass(frozen=True)
class ClientSettings:
    """What the people's client (`license-svc keys …`, `audit …`) reads: where, and as whom."""

    target: str = "127.0.0.1:50051"
    token: str = field(default="", repr=False)  # never in a repr
    note: str = ""  # one line saying where a development default came from


# With no token, beside a running `license-svc run`, the client speaks as development ops (the
# development token file's ops entry): the role that may call every method but the dialog.
DEV_CLIENT_TOKEN = "dev-ops"


def load_client(env: Mapping[str, str] | None = None) -> ClientSettings:
    env = os.environ if env is None else env
    token, note = env.get(PREFIX + "TOKEN", "").strip(), ""
    if not token:
        found = development_var(_path(env, "VAR_DIR") or Path.cwd() / Settings.var_dir)
        if found is not None:
            token = DEV_CLIENT_TOKEN
            note = (
                f"development: no token given, using {DEV_CLIENT_TOKEN} (the development ops"
                f" token) beside `license-svc run`'s var/ at {found.var_dir}"
            )
    return ClientSettings(
        target=env.get(PREFIX + "TARGET") or ClientSettings.target, token=token, note=note
    )
