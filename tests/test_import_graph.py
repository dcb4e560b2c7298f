"""No import circles among qmu_hw modules, function-level imports included (an import inside a
function still ties the two modules together; it only hides the circle from Python)."""

from __future__ import annotations

import ast
from pathlib import Path

import qmu_hw


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file, for every module of ``package`` under ``root`` (``__init__``
    files are skipped: they only re-export)."""
    return {".".join(f.relative_to(root).with_suffix("").parts): f
            for f in (root / package).rglob("*.py") if f.name != "__init__.py"}


def _targets(mods: dict[str, Path], current: str, node) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    base = current.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    out = []
    for a in node.names:
        sub = f"{target}.{a.name}"
        out.append(sub if sub in mods else target)
    return [t for t in out if t in mods]


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    mods = _modules(root, package)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges[m].update(t for t in _targets(mods, m, node) if t != m)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def test_no_import_circles_among_qmu_hw_modules():
    root = Path(qmu_hw.__file__).resolve().parents[1]
    edges = import_graph(root, "qmu_hw")
    assert len(edges) > 50  # the walk found the package
    assert cycles(edges) == []


def test_the_check_finds_a_circle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n    return a\n")
    (pkg / "c.py").write_text("from pkg import a\n")
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b"]]
