"""The library's shape: no import cycle between its modules, no module using another's private names,
no module over 400 lines.

Imports are read statically from every module of `pipeline/`, function-local ones included (a cycle
broken by a function-local import is still a cycle). A submodule's implicit import of its package's
`__init__` is not an edge: Python runs `__init__` first, whatever it re-exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "pipeline"


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module under `root` (a package folder)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of `mods` it imports (`from a.b import c` counts a.b, and a.b.c if a module)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle_through_a_function_local_import(tmp_path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import a\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph(modules(pkg))
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_import_cycle_between_pipeline_modules() -> None:
    assert cycles(import_graph(modules(PACKAGE))) == []


def test_no_module_is_over_400_lines() -> None:
    # One concept per module: past ~400 lines a module holds two (split it along them).
    lengths = {name: len(path.read_text().splitlines()) for name, path in modules(PACKAGE).items()}
    assert {name: n for name, n in lengths.items() if n > 400} == {}


def test_no_module_imports_a_private_name_of_another() -> None:
    # The library, its stages, benchmarks and tests alike: a private name is its module's own.
    files = {
        **modules(PACKAGE),
        **{str(p): p for d in ("stages", "cli", "bench", "tests") for p in (REPO / d).rglob("*.py")},
    }
    offenders = []
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("pipeline", "stages")):
                names = [a.name for a in node.names]
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                offenders += [f"{name}: from {node.module} import {p}" for p in private]
    assert offenders == []
