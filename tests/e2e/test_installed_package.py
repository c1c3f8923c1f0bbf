"""The image's premise: the package works installed, away from the repository. A wheel of the
tree is installed into a folder of its own and run from another folder against a real
database; nothing it reads may resolve into the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import REPO, TEST_PEPPER
from tests.views_support import fresh_database


def probe(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, Any]]:
    """Install the wheel; import it from another folder; what its config module resolves."""
    site = installed(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tokens = shutil.copy(REPO / "deploy" / "dev" / "tokens.json", tmp_path / "tokens.json")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LICENSE_SVC_")},
        "PYTHONPATH": str(site),  # ahead of the editable install of the repository
        "LICENSE_SVC_PEPPER": TEST_PEPPER,
        "LICENSE_SVC_TOKENS_FILE": str(tokens),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=elsewhere, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    assert Path(found["package"]).is_relative_to(site)
    return elsewhere, env, found


PROBE = """
import json, pathlib, license_svc, license_svc.config as config
paths = {k: str(v) for k, v in vars(config).items() if isinstance(v, pathlib.Path)}
print(json.dumps({"package": license_svc.__file__, "paths": paths,
                  "dev_tokens": config.DEV_TOKENS.is_file()}))
"""


def installed(tmp_path: Path) -> Path:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)]
    subprocess.run(build, check=True, capture_output=True, cwd=tmp_path, timeout=180)
    wheel = next(wheels.glob("license_svc-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return site


def test_the_installed_package_runs_away_from_the_repository(
    database_url: str, tmp_path: Path
) -> None:
    elsewhere, env, found = probe(tmp_path)
    inside_repo = {k: p for k, p in found["paths"].items() if Path(p).is_relative_to(REPO)}
    assert inside_repo == {}
    with fresh_database(database_url) as url:
        listed = subprocess.run(
            [sys.executable, "-m", "license_svc.entrypoints.cli.main", "projections", "list"],
            env={**env, "LICENSE_SVC_DATABASE_URL": url},
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert listed.returncode == 0, listed.stderr
    assert "catalog generation=1" in listed.stdout


def test_the_development_tokens_of_run_ship_with_the_package(tmp_path: Path) -> None:
    _, _, found = probe(tmp_path)
    assert found["dev_tokens"]


def test_the_wheel_installs_the_service_and_its_views_as_the_only_top_level_packages(
    tmp_path: Path,
) -> None:
    site = installed(tmp_path)
    top_level = {
        path.name
        for path in site.iterdir()
        if (path / "__init__.py").is_file() or path.suffix == ".py"
    }
    assert top_level == {"license_svc", "projections"}
