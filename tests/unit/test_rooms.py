"""The rooms stay apart: the views, the machinery that keeps them and the live read path know
nothing of the gRPC adapter, and the adapter is wired by the composition root, not the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import REPO

SRC = REPO / "src"


def _imports(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(SRC))] = names
    return found


def test_views_workers_and_read_path_do_not_import_the_api():
    for folder in (SRC / "projections", SRC / "readpath"):
        for module, names in _imports(folder).items():
            assert not [n for n in names if n.startswith("license_svc.api")], module


def test_the_api_does_not_import_the_composition_root():
    for module, names in _imports(SRC / "license_svc" / "api").items():
        assert "license_svc.bootstrap" not in names, module
