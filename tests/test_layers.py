"""The package's layering: the order written once in the package docstring (``deepretrieval/__init__.py``)
holds for every import under ``src/``, lazy ones included, and no import cycle exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = "deepretrieval"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE
# A table line: the layer's number, its names separated by commas (``name/``: a subpackage), then free text.
LAYER_LINE = re.compile(r"^\s*(\d+)\s+([a-z_]+/?(?:,\s*[a-z_]+/?)*)")


def layer_table() -> dict[str, int]:
    """``{name: layer}`` from the package docstring's table (``tasks/`` is written ``tasks``)."""
    doc = ast.get_docstring(ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))) or ""
    _, found, rest = doc.partition("Layers")
    assert found, "the package docstring has no 'Layers' table"
    table: dict[str, int] = {}
    for line in rest.splitlines():
        match = LAYER_LINE.match(line)
        if match is None:
            if table and not line.strip():  # the blank line after the table ends it
                break
            continue
        for name in match[2].split(","):
            name = name.strip().rstrip("/")
            assert name not in table, f"{name} is placed twice in the layer table"
            table[name] = int(match[1])
    assert table, "the package docstring's 'Layers' table is empty"
    return table


def modules() -> dict[str, Path]:
    """Every module under src/: ``{dotted name: file}`` (a package by its ``__init__``)."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, by any import statement anywhere in it (inside functions
    and ``if TYPE_CHECKING:`` too); relative imports resolved; ``from pkg import mod`` names the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def layer_of(module: str, table: dict[str, int]) -> int | None:
    """A module's layer: that of its top-level name under the package (the package itself: the lowest)."""
    if module == PACKAGE:
        return min(table.values())
    return table.get(module.split(".")[1])


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) - {name} for name, path in found.items()}


def tangles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm): modules that import
    each other through some loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [c for c in components if len(c) > 1]


def shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest cycle (``[a, b, ..., a]``) through the component's first module, breadth first."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{sorted(component)} is no strongly connected component")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per tangle."""
    return [shortest_cycle(graph, component) for component in tangles(graph)]


def test_every_module_is_placed_in_a_layer():
    table = layer_table()
    unplaced = sorted(m for m in modules() if layer_of(m, table) is None)
    assert not unplaced, f"modules missing from the layer table in {PACKAGE}/__init__.py: {', '.join(unplaced)}"


def test_no_module_imports_a_higher_layer():
    table = layer_table()
    violations = []
    for importer, imported in sorted(import_graph().items()):
        a = layer_of(importer, table)
        for target in sorted(imported):
            b = layer_of(target, table)
            if a is not None and b is not None and b > a:
                violations.append(f"{importer} -> {target} (layer {a} -> {b})")
    assert not violations, "imports of a higher layer:\n" + "\n".join(violations)


def test_no_import_cycle():
    graph = import_graph()
    found = [
        " -> ".join(shortest_cycle(graph, component)) + f"  (a loop among: {', '.join(sorted(component))})"
        for component in tangles(graph)
    ]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_checks_see_what_they_should():
    """The checker itself: the table parses, relative and lazy imports resolve, and a cycle is found."""
    table = layer_table()
    assert table["errors"] == 1 and table["tasks"] == 5 and table["cli"] == max(table.values())
    graph = import_graph()
    assert "deepretrieval.tasks.base" in graph["deepretrieval.tasks.retrieval"]  # from .base import ...
    assert "deepretrieval.metrics" in graph["deepretrieval.rewards"]  # from . import metrics as M
    assert "deepretrieval.train" in graph["deepretrieval.cli"]  # inside a function
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
