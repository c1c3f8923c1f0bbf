"""`python -m license_svc.entrypoints.probe [HOST:PORT]`: exit 0 when the gRPC health service there
answers SERVING, else 1 — for container health checks where the platform has no gRPC probe of
its own (docker compose). The default is the plaintext health endpoint of the deploy manifests
(`LICENSE_SVC_HEALTH_LISTEN=0.0.0.0:8081`)."""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT = "127.0.0.1:8081"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else DEFAULT
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError as error:
            print(f"{address}: {error.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{address}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
