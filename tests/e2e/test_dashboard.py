"""The ops dashboard page in a real browser (Debian's chromium, driven by Playwright — no browser
download), over a real server and a real PostgreSQL: the numbers equal GetKeyStats, a reseller
sees only its own rows, nothing is fetched from anywhere but the page's own server, and an
account id holding `<script>` is shown as text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from license_svc import bootstrap
from license_svc.access.auth import TokenTable
from license_svc.bootstrap import Service
from license_svc.domain import codes
from license_svc.entrypoints.api.gen import licensing_pb2 as pb
from license_svc.entrypoints.dashboard.server import Dashboard, start_dashboard
from tests.dashboard_support import Visitor
from tests.helpers import unique
from tests.support import TOKENS, Client, FakeClock, free_port
from tests.views_support import cli_env, stop, wait_until

POISON = "<script>window.__pwned = 1</script>"
TIER = {pb.TIER_STARTER: "starter", pb.TIER_GROWTH: "growth", pb.TIER_SCALE: "scale"}
STATUS = {
    pb.KEY_STATUS_ISSUED: "issued",
    pb.KEY_STATUS_ACTIVATED: "activated",
    pb.KEY_STATUS_REVOKED: "revoked",
    pb.KEY_STATUS_EXPIRED: "expired",
}
CHROMIUM = shutil.which("chromium")


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("LICENSE_SVC_TEST_REQUIRE_BROWSER"):  # set by .ci/run
            pytest.fail("CI runs the dashboard test: .ci/run installs Debian's chromium")
        pytest.skip(
            "no browser on this machine: Debian's chromium is not installed"
            " (apt-get install -y chromium; .ci/run installs it)"
        )
    return CHROMIUM


@pytest.fixture
def served(
    service: Service, serve_in_process: Callable[[Service], Client], clock: FakeClock
) -> Iterator[tuple[Client, str]]:
    """A gRPC server and the dashboard over one service, holding keys of both resellers, one
    activation whose account id (from an event older than the API's validation) is a script."""
    bootstrap.start_projections(service)
    client = serve_in_process(service)
    dashboard: Dashboard = start_dashboard(service, "127.0.0.1:0")
    last = 0
    for reseller, tier in (("acme", pb.TIER_STARTER), ("globex", pb.TIER_SCALE)):
        keys = client.issue(6, reseller, tier=tier, period_months=1).keys
        for key in keys[:3]:
            clock.advance(hours=20)
            last = client.activate(key.code, unique(f"acct-{reseller}"), unique("s")).position
        last = client.keys.RevokeKey(
            pb.RevokeKeyRequest(key_id=keys[5].key_id), metadata=client.as_(reseller), timeout=10
        ).position
    poisoned = client.issue(1, "acme", period_months=1).keys[0]
    last = service.app.activate(service.app.key_id_of(codes.parse(poisoned.code)), POISON).position
    with pytest.raises(grpc.RpcError):  # a wrong code: one failed attempt
        client.validate("INT-0000-0000-0000", unique("acct"), unique("s"))
    wait_until(lambda: key_stats(client).position >= last, "the catalog catches up", timeout=60)
    yield client, f"http://127.0.0.1:{dashboard.port}"


def key_stats(client: Client, role: str = "ops", **fields: Any) -> pb.GetKeyStatsResponse:
    answer: pb.GetKeyStatsResponse = client.ops.GetKeyStats(
        pb.GetKeyStatsRequest(**fields), metadata=client.as_(role), timeout=10
    )
    return answer


def expected_cells(answer: pb.GetKeyStatsResponse) -> dict[tuple[str, str, str], int]:
    return {(c.reseller_id, TIER[c.tier], STATUS[c.status]): c.count for c in answer.counts}


def page_cells(page: Any) -> dict[tuple[str, str, str], int]:
    cells = page.eval_on_selector_all(
        "#counts td[data-status][data-reseller]",
        "els => els.map(e => [e.dataset.reseller, e.dataset.tier, e.dataset.status,"
        " e.textContent])",
    )
    found = {(r, t, s): int(n.replace(",", "")) for r, t, s, n in cells}
    return {k: n for k, n in found.items() if n}


def page_days(page: Any) -> list[tuple[str, int]]:
    bars = page.eval_on_selector_all(
        "#activations rect[data-date]", "els => els.map(e => [e.dataset.date, e.dataset.count])"
    )
    return [(d, int(n)) for d, n in bars]


def test_the_dashboard_in_chromium_shows_getkeystats_scoped_escaped_and_offline(
    chromium: str, served: tuple[Client, str], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    client, base = served
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            ops = browser.new_page(viewport={"width": 1200, "height": 900})
            ops.on("request", lambda request: requests.append(request.url))
            ops.goto(base + "/")
            assert ops.url == base + "/login"  # no token yet: the sign-in form
            ops.fill("input[name=token]", TOKENS["ops"])
            ops.click("button[type=submit]")
            ops.wait_for_selector("#counts")
            shot = tmp_path / "dashboard.png"
            ops.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if target := os.environ.get("LICENSE_SVC_DASHBOARD_SCREENSHOT"):
                shutil.copy(shot, target)

            stats = key_stats(client)
            assert page_cells(ops) == expected_cells(stats)
            assert page_days(ops) == [(d.date, d.count) for d in stats.activations_per_day]
            assert f"position {stats.position:,}" in ops.inner_text("#position")
            assert ops.inner_text("#failures-total") != "0"
            assert ops.locator("#lag td[data-lag=catalog]").inner_text() == "0"

            expiring = ops.inner_text("#expiring")  # the script is text, not an element
            assert POISON in expiring
            assert ops.locator("#expiring script").count() == 0
            assert ops.evaluate("window.__pwned") is None

            ops.goto(base + "/?reseller=globex")
            globex = key_stats(client, reseller_id="globex")
            assert page_cells(ops) == expected_cells(globex)
            assert {r for r, _, _ in page_cells(ops)} == {"globex"}

            reseller = browser.new_context(
                extra_http_headers={"Authorization": f"Bearer {TOKENS['acme']}"}
            ).new_page()
            reseller.on("request", lambda request: requests.append(request.url))
            reseller.goto(base + "/?reseller=globex")  # asks for another's: gets its own
            own = key_stats(client, "acme")
            assert page_cells(reseller) == expected_cells(own)
            assert {r for r, _, _ in page_cells(reseller)} == {"acme"}
            rows = reseller.eval_on_selector_all(
                "#expiring tbody tr", "els => els.map(e => e.cells[5].textContent)"
            )
            assert rows and set(rows) == {"acme"}
            assert reseller.locator("#lag").count() == 0
            assert POISON in reseller.inner_text("#expiring")
        finally:
            browser.close()
    assert requests and all(url.startswith(base + "/") for url in requests), requests


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_the_dashboard_asks_for_an_ops_or_reseller_token(served: tuple[Client, str]) -> None:
    _, base = served
    status, headers, body = fetch(base + "/", Authorization=f"Bearer {TOKENS['ops']}")
    assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["Connection"] == "close"
    assert "<script" not in body.replace("&lt;script", "")
    assert fetch(base + "/", Authorization="Bearer nope")[0] == 401
    assert fetch(base + "/", Authorization=f"Bearer {TOKENS['portal']}")[0] == 403
    for bad in ("product=bogus", "reseller=%00", "reseller=%3Cb%3E"):
        assert fetch(f"{base}/?{bad}", Authorization=f"Bearer {TOKENS['ops']}")[0] == 400, bad
    assert fetch(base + "/elsewhere")[0] == 404


def test_the_dashboard_command_serves_the_page_and_a_taken_port_is_one_line(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "license_svc.entrypoints.cli.main",
        "dashboard",
        "--listen",
        f"127.0.0.1:{port}",
    ]
    env = cli_env(database_url, LICENSE_SVC_METRICS_LISTEN="")
    with (tmp_path / "dashboard.log").open("wb") as log:
        first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:

        def answers() -> bool:
            try:
                return fetch(f"http://127.0.0.1:{port}/login")[0] == 200
            except OSError:
                return False

        wait_until(answers, "the dashboard command answers", timeout=60)
        status, _, body = fetch(f"http://127.0.0.1:{port}/", Authorization="Bearer dev-ops")
        assert status == 200 and "catalog view at position" in body
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        errors = [line for line in second.stderr.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and "LICENSE_SVC_DASHBOARD_LISTEN" in errors[0], second.stderr
    finally:
        stop(first)


def test_a_reloaded_token_table_changes_who_may_open_the_page(
    service: Service, tmp_path: Path
) -> None:
    """The page shares the server's token table, so SIGHUP's reload reaches it too."""
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps([{"token": "ops-before", "role": "ops"}]))
    tokens = TokenTable.from_file(path)
    dashboard = start_dashboard(service, "127.0.0.1:0", tokens)
    base = f"http://127.0.0.1:{dashboard.port}/"
    assert fetch(base, Authorization="Bearer ops-before")[0] == 200
    signed_in = Visitor(base.rstrip("/"))
    assert signed_in.sign_in("ops-before").status == 303 and signed_in.signed_in()
    path.write_text(json.dumps([{"token": "ops-after", "role": "ops"}]))
    assert tokens.reload()
    assert fetch(base, Authorization="Bearer ops-before")[0] == 401
    assert not signed_in.signed_in()  # its session ends with its token
    assert fetch(base, Authorization="Bearer ops-after")[0] == 200
