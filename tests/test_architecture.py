"""The package's import structure, as ARCHITECTURE.md states it: no import circles (lazy imports inside
functions included), and the science library never imports the book machinery (``cmlib.book``); only the
entry point (``cmlib.cli``) does."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at module level or inside a function)."""
    def name(p: Path) -> str:
        parts = list(p.relative_to(package.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name(p): p for p in package.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        here = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for a in node.names:
                    sub = f"{target}.{a.name}" if target else a.name
                    deps.add(sub if sub in files else target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        # a submodule's own parent packages are imported with it: not an edge of the design
        graph[mod] = {d for d in deps if d in files and d != mod and not mod.startswith(d + ".")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_circle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from ..a import x\n")
    assert circles(import_graph(pkg)) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    (pkg / "sub" / "c.py").write_text("import numpy\n")
    assert circles(import_graph(pkg)) == []


def test_no_import_circles():
    assert circles(import_graph(ROOT / "cmlib")) == []


def test_the_library_does_not_import_the_book():
    graph = import_graph(ROOT / "cmlib")
    def book(m: str) -> bool:
        return m == "cmlib.book" or m.startswith("cmlib.book.")

    bad = {m: sorted(d for d in deps if book(d)) for m, deps in graph.items() if not book(m) and m != "cmlib.cli"}
    assert {m: d for m, d in bad.items() if d} == {}
    assert any(book(d) for d in graph["cmlib.cli"])      # the checker sees the one that does


def test_every_subpackage_is_installed():
    """A non-editable install (``pip install .``, a cluster's environment) holds every package of the tree:
    the packaging config once listed ``cmlib`` and ``cmlib.book`` only, and such an install had no
    ``cmlib.simulate``, ``data``, ``models`` or ``train``."""
    import tomllib

    from setuptools import find_packages

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    listed = set(packages) if isinstance(packages, list) else set(
        find_packages(str(ROOT), include=packages["find"]["include"]))
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cmlib").rglob("__init__.py")}
    assert tree <= listed, sorted(tree - listed)
