"""A plaintext gRPC health endpoint of its own (`LICENSE_SVC_HEALTH_LISTEN`), for probes.

The projection worker and the sweeper serve nothing else, so a platform cannot otherwise tell
a stuck one from a working one; a TLS server gets a probe port without client certificates.
The status ("" service) is SERVING while `serving()` holds — the database reachable (the
background check) and the process's background threads alive — re-evaluated every interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from license_svc import netaddr

if TYPE_CHECKING:
    from license_svc.bootstrap import Service

log = logging.getLogger("license_svc.entrypoints.health")


class HealthEndpoint:
    def __init__(self, address: str, serving: Callable[[], bool], interval: float) -> None:
        self._serving = serving
        self._interval = interval
        self._stopping = threading.Event()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
            options=[("grpc.so_reuseport", 0)],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self.port = self._server.add_insecure_port(address)
        self._thread = threading.Thread(target=self._follow, name="health-endpoint", daemon=True)

    def start(self) -> None:
        self._update()
        self._server.start()
        self._thread.start()

    def _update(self) -> None:
        ok = False
        try:
            ok = self._serving()
        except Exception:
            log.exception("health check failed")
        status = health_pb2.HealthCheckResponse
        self.health.set("", status.SERVING if ok else status.NOT_SERVING)

    def _follow(self) -> None:
        while not self._stopping.wait(self._interval):
            self._update()

    def stop(self, timeout: float = 1.0) -> None:
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self._server.stop(timeout).wait()


def start_health_endpoint(service: Service) -> HealthEndpoint | None:
    """The plaintext health endpoint at LICENSE_SVC_HEALTH_LISTEN, if set (any command)."""
    address = service.settings.health_listen
    if not address:
        return None
    service.monitor.start()
    endpoint = HealthEndpoint(address, service.serving, service.settings.health_interval_seconds)
    endpoint.start()
    service.endpoints.append(endpoint)
    log.info("health endpoint on %s", netaddr.HostPort(netaddr.parse(address).host, endpoint.port))
    return endpoint
