"""The repository stands alone: no tracked file points at documents outside it. The product
rules are docs/rules.md (cited as "rules §N"), the contract docs/contract.md."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import REPO

# Spelled in pieces, so that this file does not match itself.
OUTSIDE = ["../" + "shared", "/work/" + "shared", "SPEC" + " §", "SPEC" + ".md", "STYLE" + ".md"]


def tracked_text_files() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [path for path in listed if not path.startswith("bench/results/")]


def test_no_tracked_file_points_outside_the_repository() -> None:
    found = []
    for path in tracked_text_files():
        try:
            text = (REPO / path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue  # binary (a chart) or deleted in the work tree
        for number, line in enumerate(text.splitlines(), 1):
            found += [f"{path}:{number}: {line.strip()}" for p in OUTSIDE if p in line]
    assert found == [], "cite docs/rules.md as 'rules §N' instead:\n" + "\n".join(found)
