"""The package's layout: stages import downwards only, and no module imports itself back.

Imports are read from the source (every ``import`` and ``from ... import``, also those inside
functions: a lazy import is still a dependency), so the check needs no module to be importable.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "neuralcomputer"

# A stage may import stages of a lower or equal rank, never a higher one (README.md, "Layout").
# eval sits low: its metrics and reports work on arrays and drive models only through the
# ClipGenerator protocol, so training validates with it and the runtime and experiments use it.
RANKS = {
    "errors": 0,
    "data": 1,
    "models": 2, "diffusion": 2, "eval": 2,
    "config": 3, "pipelines": 3,
    "train": 4, "runtime": 4,
    "experiments": 5,
    "bench": 6, "demo": 6,
    "cli": 7,
}
# Stages of equal rank that must not import each other either.
SIBLINGS = [("models", "diffusion"), ("models", "eval"), ("diffusion", "eval"), ("train", "runtime"),
            ("config", "pipelines"), ("bench", "demo")]


def module_names() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (a ``from pkg import mod`` counts as importing ``mod``)."""
    modules = module_names()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges |= {m for a in node.names if (m := known(a.name))}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(parent + ([node.module] if node.module else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    edges.add(target if target in modules else known(base))
        graph[name] = {e for e in edges if e and e != name}
    return graph


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph()) == []


def test_every_stage_has_a_rank() -> None:
    assert {stage(m) for m in module_names()} - {"(package)"} <= set(RANKS)


@pytest.mark.parametrize("rule", ["downwards", "siblings"])
def test_stages_import_downwards_only(rule: str) -> None:
    bad = []
    for module, imported in import_graph().items():
        for target in imported:
            a, b = stage(module), stage(target)
            if a == b or "(package)" in (a, b):
                continue
            if rule == "downwards" and RANKS[b] > RANKS[a]:
                bad.append(f"{module} -> {target}")
            if rule == "siblings" and ((a, b) in SIBLINGS or (b, a) in SIBLINGS):
                bad.append(f"{module} -> {target}")
    assert bad == []


def test_the_two_systems_data_rooms_are_apart() -> None:
    """data/terminal and data/desktop never import each other, and what both share imports neither."""
    bad = []
    for module, imported in import_graph().items():
        if not module.startswith("neuralcomputer.data"):
            continue
        room = module.split(".")[2] if module.count(".") >= 3 else "shared"
        for target in imported:
            if not target.startswith("neuralcomputer.data.") or target.count(".") < 3:
                continue
            target_room = target.split(".")[2]
            if room != target_room:
                bad.append(f"{module} -> {target}")
    assert bad == []


def test_diffusion_knows_no_network() -> None:
    graph = import_graph()
    assert [m for m in graph if stage(m) == "diffusion" and any(stage(t) == "models" for t in graph[m])] == []
