"""deploy/prometheus (alert rules) and deploy/grafana (dashboard) are valid, and name only
metrics the server exposes (tests/e2e/test_metrics.py checks those against a live scrape)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.support import REPO

PROMETHEUS = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "license-svc.json"
METRIC = re.compile(r"\b(?:grpc_server|license_svc)_[a-z_]+\b")


def names_used() -> set[str]:
    text = (PROMETHEUS / "alerts.yml").read_text() + DASHBOARD.read_text()
    return set(METRIC.findall(text))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # .ci/run installs Debian's prometheus package, so CI never skips this
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    tool = promtool()
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(
            [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_is_grafana_json_whose_panels_all_query_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "license-svc"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(target["expr"] for p in panels for target in p["targets"])
    titles = " ".join(p["title"] for p in panels).lower()
    for topic in ("lag", "error", "blocked", "pool", "keys", "latency"):
        assert topic in titles


def test_rules_and_dashboard_name_metrics_of_the_server() -> None:
    used = names_used()
    assert "license_svc_projection_lag_events" in used
    assert "grpc_server_handled_total" in used
