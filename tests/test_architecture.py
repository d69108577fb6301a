"""The house's structure, held by tests: the module list in docs/architecture.md is the
code's own, and no import runs in a circle.

Regenerate the module list after adding, removing or re-describing a module with::

    LOYALTY_REGENERATE_DOCS=1 python -m pytest tests/test_architecture.py
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("dsl", "service")
START, END = "<!-- modules:start -->", "<!-- modules:end -->"


def _modules() -> dict[str, Path]:
    """Every module of the project's packages (generated stubs left out), by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("service", "gen"):
                continue
            name = ".".join(rel.with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _job(path: Path) -> str:
    """The first sentence of a module's docstring: its one job."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    return first


def module_table() -> str:
    """docs/architecture.md's module list: one row per module, its lines and its one job."""
    rows = ["| module | lines | its one job |", "| --- | --- | --- |"]
    for name, path in _modules().items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        rows.append(f"| `{name}` | {lines:,} | {_job(path).replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def test_every_module_says_its_job():
    """Each module opens with a docstring: the first line of its row in the doc."""
    silent = [name for name, path in _modules().items() if not _job(path)]
    assert not silent, f"modules without a docstring: {silent}"


def test_the_module_list_in_the_doc_is_the_codes():
    """docs/architecture.md lists every module once, with its job; none that is gone."""
    text = DOC.read_text(encoding="utf-8")
    assert START in text and END in text, f"{DOC} needs the markers {START} and {END}"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    want = f"{START}\n{module_table()}{END}"
    if os.environ.get("LOYALTY_REGENERATE_DOCS"):
        DOC.write_text(head + want + tail, encoding="utf-8")
    listed = set(re.findall(r"^\| `([\w.]+)` \|", rest.split(END, 1)[0], re.M))
    missing = sorted(set(_modules()) - listed)
    gone = sorted(listed - set(_modules()))
    assert not missing and not gone, f"missing from the doc: {missing}; gone from the code: {gone}"
    assert f"{START}\n{rest.split(END, 1)[0].lstrip(chr(10))}{END}" == want, (
        "the module list is stale: LOYALTY_REGENERATE_DOCS=1 python -m pytest tests/test_architecture.py")


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file, late imports included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_runs_in_a_circle():
    """No module reaches itself through imports, counting imports inside functions, so no
    late import hides a loop. A package's ``__init__`` that re-exports its modules counts
    as importing them, so the front door must sit above everything it exports."""
    graph = _graph()
    # A package's __init__ is imported whenever one of its modules is: leaving out the
    # edge from a module to its own package's front door keeps that from reading as a loop.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert _cycles(graph) == []


def test_the_language_never_imports_the_service():
    """dsl/ is a library: nothing in it imports service/."""
    wrong = {name: sorted(t for t in targets if t.startswith("service"))
             for name, targets in _graph().items() if name.startswith("dsl")}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_the_cycle_finder_finds_a_cycle():
    """The loop check can fail: a two-module circle and a three-module one are found."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]
