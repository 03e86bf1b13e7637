"""No import cycle among ckptguard's modules, function-level imports included.

A cycle hidden behind an import inside a function still ties two modules together (each needs
the other to be importable and initialised in a given order); this test reads every import
statement with :mod:`ast` (module level, inside functions and under ``TYPE_CHECKING``) and
checks that the graph of ckptguard modules has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "ckptguard"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _resolve(modules: dict[str, Path], name: str) -> str | None:
    """The ckptguard module ``name`` denotes (``a.b.c`` may name ``c`` inside module ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(modules: dict[str, Path], module: str) -> set[str]:
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule `pkg.sub` when there is one, else
            # takes a name from `pkg` (parent packages are implied, as for any import)
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for name in names:
            target = _resolve(modules, name)
            if target is not None and target != module:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    # importing `a.b.c` initialises its packages `a.b` and `a` first; those edges are implied
    # by Python, not written by us, and are left out
    return {m: _imports(modules, m) for m in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def test_no_import_cycle_among_ckptguard_modules() -> None:
    graph = _graph()
    assert len(graph) > 50  # the walk found the package
    cycles = _cycles(graph)
    assert cycles == [], "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    # guards the test above: a cycle hidden in a function is still found
    modules = {"ckptguard.a": tmp_path / "a.py", "ckptguard.b": tmp_path / "b.py"}
    modules["ckptguard.a"].write_text("from ckptguard.b import f\n")
    modules["ckptguard.b"].write_text("def f():\n    from .a import g  # noqa\n")
    graph = {m: _imports(modules, m) for m in modules}
    assert _cycles(graph) == [["ckptguard.a", "ckptguard.b"]]


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("ckptguard._load._safe_load", "ckptguard._load._patch"),
        ("ckptguard._policy._data", "ckptguard._policy._discovery"),
    ],
)
def test_the_cycles_issue_13_names_are_gone(module: str, imported: str) -> None:
    assert imported not in _graph()[module]
