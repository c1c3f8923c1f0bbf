"""The rooms of `src/` and who may import whom (README, "Where things live").

- `license_svc.domain` is pure: it imports nothing of the project but itself.
- A capability (`keys`, `plans`, `attempts`, and the rooms that join them) imports the domain,
  the adapters, the settings and itself: never another capability, the read side or an entry
  point.
- The adapters import the domain, the settings and themselves.
- The read side (`license_svc.reads`) and the views (`projections`) never import a capability
  or an entry point.
- Nothing imports an entry point (`license_svc.entrypoints`) but another entry point.
- No two modules import each other, however long the way round.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from tests.support import REPO

SRC = REPO / "src"
PACKAGES = ("license_svc", "projections")
CAPABILITIES = ("keys", "plans", "attempts", "seats", "webhooks", "tokens")
GENERATED = "license_svc.entrypoints.api.gen"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


@cache
def graph() -> dict[str, set[str]]:
    """Every project module and the project modules it imports (type-only imports too)."""
    modules = {
        _module_name(path): path
        for package in PACKAGES
        for path in (SRC / package).rglob("*.py")
        if not _module_name(path).startswith(GENERATED)
    }
    edges: dict[str, set[str]] = {}
    for module, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, node, path.name == "__init__.py")
                names = [f"{target}.{alias.name}" for alias in node.names]
                found.update(n for n in names if n in modules)
                if not any(n in modules for n in names):
                    found.add(target)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        edges[module] = {
            _owner(name, modules) for name in found if name.split(".")[0] in PACKAGES
        } - {module, ""}
    return edges


def _owner(name: str, modules: dict[str, Path]) -> str:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "projections":
        return "projections"
    if len(parts) == 1:
        return "package"
    if parts[1] in CAPABILITIES:
        return "capability"
    if parts[1] in ("domain", "adapters", "reads", "entrypoints", "access"):
        return parts[1]
    return parts[1]  # config, bootstrap, startup, logs, netaddr: one module each


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(allowed: dict[str, tuple[str, ...]]) -> list[str]:
    found = []
    for module, targets in graph().items():
        kind = room(module)
        if kind not in allowed:
            continue
        own = ".".join(module.split(".")[:2])
        for target in targets:
            if _under(target, own):
                continue
            if not _under(target, *allowed[kind]):
                found.append(f"{module} imports {target}")
    return sorted(found)


def test_the_domain_imports_nothing_of_the_project():
    assert violations({"domain": ()}) == []


def test_capabilities_import_only_the_domain_the_adapters_and_the_settings():
    allowed = ("license_svc.domain", "license_svc.adapters", "license_svc.config")
    assert violations({"capability": allowed}) == []


def test_adapters_import_only_the_domain_and_the_settings():
    allowed = ("license_svc.domain", "license_svc.config", "license_svc.netaddr")
    assert violations({"adapters": allowed}) == []


def test_the_read_side_and_the_views_import_no_capability_and_no_entry_point():
    forbidden = (*(f"license_svc.{c}" for c in CAPABILITIES), "license_svc.entrypoints")
    found = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if room(module) in ("reads", "projections")
        for target in targets
        if _under(target, *forbidden)
    ]
    assert found == []


def test_nothing_imports_an_entry_point():
    found = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if room(module) != "entrypoints"
        for target in targets
        if _under(target, "license_svc.entrypoints")
    ]
    assert found == []


def test_no_modules_import_each_other():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_rules_see_every_room():
    rooms = {room(module) for module in graph()}
    assert {"domain", "capability", "adapters", "reads", "projections", "entrypoints"} <= rooms
