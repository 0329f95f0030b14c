"""The imports of services/: no cycle (counting imports inside functions and under TYPE_CHECKING) and no
arrow back up into the load tests."""

from __future__ import annotations

import ast
from pathlib import Path

from services.lab.config import REPO_ROOT

ROOT = REPO_ROOT / "services"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Every module ``path`` imports, wherever the import stands: ``from a import b`` counts as ``a.b``
    when that is a module, else as ``a``; importing ``a.b.c`` also runs the packages ``a`` and ``a.b``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    with_packages = set(found)
    for target in found:
        parts = target.split(".")
        with_packages.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return with_packages - {name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, name, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in edges:
                continue  # outside services/
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_walk_sees_imports_inside_functions_and_under_type_checking(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from services.lab import state\n"
                      "def f():\n    import services.lab.errors\n")
    known = {"services.lab.state": source, "services.lab.errors": source}
    assert {"services.lab.state", "services.lab.errors"} <= imported(source, "m", known)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_services_has_no_import_cycle():
    assert cycles(graph()) == []


def test_nothing_in_services_imports_the_load_tests():
    found = sorted(f"{name} -> {target}" for name, targets in graph().items()
                   for target in targets if target == "loadtests" or target.startswith("loadtests."))
    assert found == []


def room(module: str) -> str | None:
    """The room of the engine a module stands in: its folder under services/lab, or the module itself."""
    parts = module.split(".")
    if parts[:2] != ["services", "lab"] or len(parts) < 3:
        return None
    return parts[2]


def test_the_engine_s_rooms_import_each_other_one_way():
    """Each folder of the engine counts as one room (docs/architecture.md): two rooms never import each
    other, not even through different files (``report/`` uses ``measure/``, so nothing in ``measure/``
    may use ``report/``)."""
    rooms: dict[str, set[str]] = {}
    for name, targets in graph().items():
        here = room(name)
        if here is None:
            continue
        rooms.setdefault(here, set()).update(r for t in targets if (r := room(t)) not in (None, here))
    assert cycles(rooms) == []
    assert {"backends", "budgets", "estimate", "experiments", "generators", "measure", "replication",
            "report", "cli"} <= set(rooms)
