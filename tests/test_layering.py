"""The package layering of ../shared/DESIGN.md, checked on the source: imports run one way and no
module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import resaction

PACKAGE = Path(resaction.__file__).parent
# package -> the packages it must never import (the ones above it or beside it)
ABOVE_RUNTIME = {"engine", "inference", "deploy", "monitor", "explain", "serve", "cli"}
FORBIDDEN = {
    "io": {"data", "detection", "runtime"} | ABOVE_RUNTIME,
    "data": {"detection", "runtime"} | ABOVE_RUNTIME,
    "models": {"detection", "runtime"} | ABOVE_RUNTIME,
    "detection": {"data", "models", "runtime"} | ABOVE_RUNTIME,
    "runtime": ABOVE_RUNTIME,
    "engine": {"inference", "deploy", "monitor", "explain", "serve", "cli"},
    "inference": {"engine", "deploy", "monitor", "explain", "serve", "cli"},
    "deploy": {"monitor", "explain", "serve", "cli"},
    "monitor": {"engine", "deploy", "explain", "serve", "cli"},
    # explanations sit above inference, beside monitor: serve and cli may use them
    "explain": {"engine", "deploy", "monitor", "serve", "cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``resaction`` module ``path`` imports, at any level of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("resaction"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("resaction"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules} for name, path in modules.items()}


def test_packages_import_only_downwards() -> None:
    wrong = []
    for module, imported in graph().items():
        package = module.split(".")[1] if module.count(".") else ""
        for target in imported:
            other = target.split(".")[1] if target.count(".") else ""
            if other in FORBIDDEN.get(package, set()):
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    edges = {
        m: {t for t in targets if t != m and not m.startswith(t + ".")}
        for m, targets in graph().items()
    }
    cycles = []
    for start in edges:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start and len(path) > 1:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen and nxt not in path:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert cycles == []
