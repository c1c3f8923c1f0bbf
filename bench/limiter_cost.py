"""`python -m bench.limiter_cost [N]`: what the failed-attempt limiter costs per attempt.

In process, no gRPC: the limiter's own round trips against LICENSE_SVC_TEST_DATABASE_URL (or
LICENSE_SVC_DATABASE_URL), on the production timeline (no injected clock), one thread. Three
paths, N attempts each: an attempt that succeeds (begin + ended), one that fails (begin +
failed; a fresh account every 4 so none is blocked), and the refusal of a blocked session
(begin only). Prints the median and p99 latency and the client CPU per attempt.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable

from license_svc import bootstrap, config

PEPPER = "bench-pepper-limiter-cost-0123456789"


def _measure(name: str, n: int, attempt: Callable[[int], None]) -> str:
    for i in range(min(50, n)):  # warm the pool and the prepared statements
        attempt(-1 - i)
    latencies = []
    cpu_start = time.process_time()
    for i in range(n):
        started = time.perf_counter()
        attempt(i)
        latencies.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_start) / n
    latencies.sort()
    median = statistics.median(latencies) * 1e3
    p99 = latencies[int(0.99 * (n - 1))] * 1e3
    return f"{name:<10} median {median:6.3f} ms  p99 {p99:6.3f} ms  client CPU {cpu * 1e3:6.3f} ms"


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2000
    url = os.environ.get("LICENSE_SVC_TEST_DATABASE_URL") or os.environ["LICENSE_SVC_DATABASE_URL"]
    settings = config.load(
        {"LICENSE_SVC_DATABASE_URL": url, "LICENSE_SVC_PEPPER": PEPPER}, purpose="tool"
    )
    service = bootstrap.build(settings)
    limiter, run = service.limiter, uuid.uuid4().hex[:8]
    try:

        def succeeds(i: int) -> None:
            limiter.ended(limiter.begin(f"cost-{run}-ok", "s", "ValidateKey"))

        def fails(i: int) -> None:
            attempt = limiter.begin(f"cost-{run}-fail-{i // 4}", f"s{i}", "ValidateKey")
            limiter.failed(attempt, "KEY_NOT_AVAILABLE")

        blocked = f"cost-{run}-blocked"
        for _ in range(settings.session_attempt_limit):
            limiter.failed(limiter.begin(blocked, "s", "ValidateKey"), "KEY_NOT_AVAILABLE")

        def refused(i: int) -> None:
            try:
                limiter.begin(blocked, "s", "ValidateKey")
            except Exception as error:  # TooManyAttempts: the path measured
                assert type(error).__name__ == "TooManyAttempts", error
            else:
                raise AssertionError("the blocked session was let through")

        for name, attempt in (("succeeds", succeeds), ("fails", fails), ("refused", refused)):
            print(_measure(name, n, attempt), flush=True)
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
