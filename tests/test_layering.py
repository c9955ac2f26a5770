"""The package's import graph has no circles: between its parts (sub-packages and top-level modules),
and between the modules of each part.

A part imports another when any of its modules does, at the top or inside a function: an import
inside a function defers a circle, it does not remove it. Imports under ``if TYPE_CHECKING:`` (for
annotations only) do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "deltanas"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The ``deltanas`` modules (or packages) that the file at ``path`` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from X import y` may import the module X.y; it always runs X
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if m == "deltanas" or m.startswith("deltanas.")}


def _runtime_nodes(tree: ast.AST):
    """Every node but those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # keep the names that are modules (``from .x import y`` with ``y`` a function names no module)
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def _part(module: str) -> str:
    """``deltanas.delta._ops`` -> ``delta``; the root package is ``deltanas``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "deltanas"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` as a path that starts and ends at the same node, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def _edges(graph: dict[str, set[str]], module: str, target_part: str) -> list[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items() if _part(m) == module for t in ts
                  if _part(t) == target_part)


def test_the_parts_import_each_other_without_circles() -> None:
    graph = _graph()
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        parts.setdefault(_part(module), set()).update(_part(t) for t in targets if _part(t) != _part(module))
    assert {"analysis", "delta", "search", "sweep", "runs", "_run"} <= set(parts)
    cycle = _cycle(parts)
    if cycle:
        where = "; ".join(e for a, b in zip(cycle, cycle[1:]) for e in _edges(graph, a, b)[:3])
        pytest.fail(f"import circle between {' -> '.join(cycle)} ({where})")


def test_the_modules_of_each_part_import_each_other_without_circles() -> None:
    graph = _graph()
    for part in sorted({_part(m) for m in graph}):
        # a package's __init__ imports its modules, and a module that imports its package runs that
        # __init__: those edges are the package's face, not a circle of its insides
        inside = {m: {t for t in ts if _part(t) == part and t != f"deltanas.{part}"}
                  for m, ts in graph.items() if _part(m) == part and m != f"deltanas.{part}"}
        cycle = _cycle(inside)
        assert cycle is None, f"import circle inside {part}: {' -> '.join(cycle)}"


def test_the_graph_sees_imports_of_every_kind(tmp_path: Path) -> None:
    """The walk itself: relative, absolute, in a function, of a package and of a name."""
    graph = _graph()
    assert "deltanas.delta._ops" in graph["deltanas.delta._skipconv"]  # from ._ops import ...
    assert "deltanas.video._files" in graph["deltanas.video._bundled"]  # from deltanas.video._files import ...
    assert "deltanas.sweep" in graph["deltanas.runs"]  # inside a function
    assert "deltanas.delta._ops" not in graph["deltanas.delta._spec"]
    assert "deltanas.delta._spec" not in graph["deltanas.delta._fields"]  # under TYPE_CHECKING
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
