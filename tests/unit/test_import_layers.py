"""The floors of the code base, checked on its import graph (module-level, function-level and
TYPE_CHECKING imports alike): who may import whom, no import circle, no oversized module.

    syncd.core        kernel: domain, ports, errors, rules, clock, retry, redaction
    syncd.config      the configuration model and its loader
    syncd.connectors  adapters (ERP, shops, mail): build on core and config only
    syncd.state       the state store and its repositories
    syncd.render      mail layouts: finding, checking, rendering
    syncd.flows       the use cases, over ports, the unit of work and rendering
    syncd.shell       builds adapters, schedules flows, talks to the operator (CLI, daemon)
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = {"syncd": REPO / "syncd", "syncd.connectors": REPO / "connectors"}
SANDBOXES = ("syncd.connectors.shopware6.sandbox", "syncd.connectors.woocommerce.sandbox")

# floor -> the syncd floors it may import (itself always allowed)
MAY_IMPORT = {
    "syncd.core": set(),
    "syncd.config": {"syncd.core"},
    "syncd.connectors": {"syncd.core", "syncd.config"},
    "syncd.state": {"syncd.core", "syncd.config"},
    "syncd.render": {"syncd.core", "syncd.config"},
    "syncd.flows": {"syncd.core", "syncd.config", "syncd.state", "syncd.render"},
    "syncd.shell": {"syncd.core", "syncd.config", "syncd.state", "syncd.render", "syncd.flows",
                    "syncd.connectors"},
}
MAX_LINES = 450  # the "~400 lines", with slack


def _module_name(path: Path) -> str:
    for prefix, root in sorted(ROOTS.items(), key=lambda kv: -len(kv[0])):
        if path.is_relative_to(root):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([prefix, *parts])
    raise AssertionError(path)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for root in ROOTS.values():
        for path in root.rglob("*.py"):
            if "migrations" in path.parts or ".venv" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


@cache
def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import sub` is an edge to pkg.sub when sub is a module
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
                targets = subs or [base]
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def floor(module: str) -> str | None:
    for f in sorted(MAY_IMPORT, key=len, reverse=True):
        if module == f or module.startswith(f + "."):
            return f
    return None


def test_the_graph_sees_the_whole_tree():
    names = modules()
    assert "syncd.connectors.erp.table" in names and "syncd.shell.cli" in names
    assert "syncd.core.domain" in graph()["syncd.connectors.shopware6.push"]


def test_every_floor_imports_only_the_floors_below_it():
    wrong = []
    for source, targets in graph().items():
        here = floor(source)
        if here is None:
            continue
        for target in targets:
            there = floor(target)
            if there is not None and there != here and there not in MAY_IMPORT[here]:
                wrong.append(f"{source} -> {target}")
    assert not wrong, "imports across floors:\n" + "\n".join(sorted(wrong))


def test_only_the_windows_service_host_imports_the_windows_service():
    importers = sorted(s for s, targets in graph().items() if "syncd.winservice" in targets)
    assert importers == []


def test_no_import_circle_outside_the_sandboxes():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in list(modules()):
        if v not in index:
            visit(v)
    outside = [c for c in circles if not all(m.startswith(SANDBOXES) for m in c)]
    # A package's __init__ re-exporting its own submodules is not a circle of design.
    outside = [c for c in outside if not _init_reexport(c)]
    assert not outside, "import circles:\n" + "\n".join(" <-> ".join(c) for c in outside)


def _init_reexport(component: list[str]) -> bool:
    packages = [m for m in component if modules()[m].name == "__init__.py"]
    return len(packages) == 1 and all(m.startswith(packages[0] + ".") or m == packages[0] for m in component)


@pytest.mark.parametrize("limit", [MAX_LINES])
def test_no_module_is_oversized(limit):
    big = sorted(f"{n}: {sum(1 for _ in p.open(encoding='utf-8'))} lines" for n, p in modules().items()
                 if not n.startswith(SANDBOXES) and sum(1 for _ in p.open(encoding="utf-8")) > limit)
    assert not big, f"modules over {limit} lines (split them by job):\n" + "\n".join(big)
