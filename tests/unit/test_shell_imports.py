"""The shell's import graph: the CLI never builds adapters itself (``syncd.shell.bootstrap`` does),
and no shell module sits on an import circle. Scoped to the shell; the whole tree's layer test
comes with the layout move."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL = {"syncd.shell.bootstrap", "syncd.shell.daemon", "syncd.shell.daemon_signals", "syncd.winservice",
         "syncd.shell.service_control", "syncd.shell.scheduler", "syncd.shell.timetable",
         "syncd.core.gcpause",
         "syncd.shell.status"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for root in ("syncd", "connectors") for p in (REPO / root).rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports: at the top, inside functions and under TYPE_CHECKING.
    ``from pkg import sub`` is an edge to ``pkg.sub`` when that is a module, else to ``pkg``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _shell(module: str) -> bool:
    return module in SHELL or module == "syncd.shell.cli" or module.startswith("syncd.shell.cli.")


def test_no_shell_module_is_on_an_import_circle():
    circles = [sorted(c) for c in _cycles(_graph()) if any(_shell(m) for m in c)]
    assert circles == []


def test_the_cycle_check_sees_the_circle_it_guards_against():
    graph = _graph()
    graph["syncd.shell.daemon"] = graph["syncd.shell.daemon"] | {"syncd.winservice"}
    assert any({"syncd.shell.daemon", "syncd.winservice", "syncd.shell.cli"} <= c for c in _cycles(graph))


def test_the_cli_imports_no_connector():
    graph = _graph()
    direct = {m: sorted(i for i in imports if i == "connectors" or i.startswith("syncd.connectors."))
              for m, imports in graph.items() if m == "syncd.shell.cli" or m.startswith("syncd.shell.cli.")}
    assert len(direct) > 5, "the CLI modules were found"
    assert {m: i for m, i in direct.items() if i} == {}


def test_only_the_service_host_imports_itself():
    importers = sorted(m for m, imports in _graph().items() if "syncd.winservice" in imports)
    assert importers == []
