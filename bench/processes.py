"""Child processes of a run (server replicas, ceiling servers) and their CPU and memory.

With `workers > 1` every replica binds the same port with SO_REUSEPORT and the kernel spreads
incoming connections (not calls) between them, so the load generator opens several channels.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from license_svc.config import DEV_TOKENS, temporary_signing_key

BENCH_PEPPER = "bench-pepper-not-a-secret-0123456789"


@functools.cache
def bench_signing_key() -> Path:
    """The allowance tokens' signing key of this bench run (`serve` refuses to start without)."""
    return temporary_signing_key("license-svc-bench-key-")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(database_url: str, address: str, workers: int) -> dict[str, str]:
    """The environment of a `license-svc serve` replica; LICENSE_SVC_* tuning passes through."""
    return {
        **os.environ,
        "LICENSE_SVC_DATABASE_URL": database_url,
        "LICENSE_SVC_PEPPER": BENCH_PEPPER,
        "LICENSE_SVC_LISTEN": address,
        "LICENSE_SVC_TOKENS_FILE": str(DEV_TOKENS),
        "LICENSE_SVC_SIGNING_KEY_FILE": str(bench_signing_key()),
        "LICENSE_SVC_SO_REUSEPORT": "1" if workers > 1 else "0",
        # Metrics on (as in production) on a port of each replica's own; "" in the caller's
        # environment turns them off (the metrics-cost comparison).
        "LICENSE_SVC_METRICS_LISTEN": os.environ.get("LICENSE_SVC_METRICS_LISTEN", "127.0.0.1:0"),
    }


@dataclass
class ProcessGroup:
    """N copies of one command listening on one address."""

    name: str
    address: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self, timeout: float = 20) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_group(
    name: str, argv: Sequence[str], env: dict[str, str], address: str, copies: int, log_dir: Path
) -> ProcessGroup:
    group = ProcessGroup(name, address)
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        # One after the other: replicas that start at the same instant race on the schema's
        # CREATE … IF NOT EXISTS / CREATE OR REPLACE FUNCTION ("tuple concurrently updated").
        for index in range(copies):
            log = (log_dir / f"{name}-{index}.log").open("ab")
            group.processes.append(
                subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
            log.close()
            _wait_listening(group, log_dir)
    except BaseException:
        group.stop()
        raise
    return group


def start_service(database_url: str, workers: int, log_dir: Path) -> ProcessGroup:
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "license_svc.entrypoints.cli.main", "serve"]
    env = service_env(database_url, address, workers)
    return start_group("license-svc", argv, env, address, workers, log_dir)


def start_ceiling(mode: str, database_url: str, workers: int, log_dir: Path) -> ProcessGroup:
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "bench.ceiling_server", mode]
    env = service_env(database_url, address, workers)
    return start_group(f"ceiling-{mode}", argv, env, address, workers, log_dir)


def _wait_listening(group: ProcessGroup, log_dir: Path, timeout: float = 60) -> None:
    port = int(group.address.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    pending = set(group.pids)
    while pending:
        for process in group.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{group.name} exited with {process.returncode}: see {log_dir}")
        for pid in list(pending):
            listening = psutil.Process(pid).net_connections(kind="tcp")
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in listening):
                pending.discard(pid)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{group.name} not listening on {group.address} after {timeout}s")
        time.sleep(0.1)
    with grpc.insecure_channel(group.address) as channel:
        wait_until_serving(health_pb2_grpc.HealthStub(channel), deadline, group.name, timeout)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Terminate it if it runs; killed if it has not exited `timeout` seconds later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_serving(
    health: health_pb2_grpc.HealthStub, deadline: float, what: str, timeout: float
) -> None:
    """Ask `health` until it answers SERVING; past `deadline` (monotonic), TimeoutError naming
    `what` and the `timeout` it was given."""
    while True:
        try:
            answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not SERVING after {timeout}s")
        time.sleep(0.1)


def _cpu_seconds(processes: dict[int, psutil.Process]) -> dict[int, float]:
    seconds = {}
    for pid, process in processes.items():
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[pid] = times.user + times.system
    return seconds


_CLUSTER: list[int] = []  # the postmaster of this run's database, once known


def watch_cluster(database_url: str) -> None:
    """Count only the PostgreSQL cluster serving `database_url` in dbCPU (its postmaster and
    every process it forks), not other clusters on the machine. Needs that postmaster to be
    visible to this user (a local server); else dbCPU stays every postgres process's."""
    import psycopg

    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            backend = psutil.Process(conn.info.backend_pid)
            _CLUSTER[:] = [backend.ppid()]
    except (psycopg.Error, psutil.Error):
        _CLUSTER.clear()


def _postgres_processes() -> dict[int, psutil.Process]:
    if _CLUSTER:
        try:
            root = psutil.Process(_CLUSTER[0])
            return {p.pid: p for p in [root, *root.children(recursive=True)]}
        except psutil.Error:
            pass
    found = {}
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in ("postgres", "postmaster"):
            found[process.pid] = process
    return found


class Monitor:
    """CPU (in cores: 1.0 = one core busy) and peak RSS of server pids during a measurement,
    and the CPU of the projection worker.

    Postgres CPU is the whole cluster's serving the run's database (`watch_cluster`), other
    databases' clients of that cluster included: exact on the embedded default, a hint on a
    shared server.
    """

    def __init__(
        self, pids: Sequence[int], worker_pids: Sequence[int] = (), interval: float = 0.1
    ) -> None:
        self._servers = {pid: psutil.Process(pid) for pid in pids}
        self._workers = {pid: psutil.Process(pid) for pid in worker_pids}
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak_rss: dict[int, int] = dict.fromkeys(pids, 0)
        self.server_cores = 0.0
        self.cores_by_pid: dict[int, float] = {}
        self.db_cores = 0.0
        self.worker_cores = 0.0  # the projection worker's

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self._rss_once()

    def _rss_once(self) -> None:
        for pid, process in self._servers.items():
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                continue
            self.peak_rss[pid] = max(self.peak_rss[pid], rss)

    def __enter__(self) -> Monitor:
        self._postgres = _postgres_processes()
        self._db_start = _cpu_seconds(self._postgres)
        self._start = _cpu_seconds(self._servers)
        self._worker_start = _cpu_seconds(self._workers)
        self._t0 = time.monotonic()
        self._rss_once()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._rss_once()
        wall = max(time.monotonic() - self._t0, 1e-9)
        end = _cpu_seconds(self._servers)
        self.cores_by_pid = {p: (end[p] - self._start.get(p, 0.0)) / wall for p in end}
        self.server_cores = sum(self.cores_by_pid.values())
        worker_end = _cpu_seconds(self._workers)
        self.worker_cores = (
            sum(worker_end[p] - self._worker_start.get(p, 0.0) for p in worker_end) / wall
        )
        postgres = {**self._postgres, **_postgres_processes()}
        db_end = _cpu_seconds(postgres)
        self.db_cores = sum(db_end[p] - self._db_start.get(p, 0.0) for p in db_end) / wall

    @property
    def peak_rss_mb(self) -> float:
        """The largest peak RSS of any one server process, in MiB."""
        return max(self.peak_rss.values(), default=0) / 2**20


@contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """Client processes (spawned) that an interrupted run terminates instead of waiting for:
    a client mid-call to a server the unwind already stopped would hold it for its deadline."""
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield executor
    except BaseException:
        for process in list(getattr(executor, "_processes", {}).values()):
            process.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
