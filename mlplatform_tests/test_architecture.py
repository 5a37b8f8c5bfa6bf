"""The layout the README promises: Dagster-free domain packages that import each other one way.

Every import counts, a function-local one too: a cycle held together by imports inside functions
is still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import mlplatform

ROOT = Path(mlplatform.__file__).parent
DOMAIN = (
    "data",
    "features",
    "training",
    "evaluation",
    "promotion",
    "monitoring",
    "registry",
    "serving",
    "notifications",
)


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_domain_packages_import_no_dagster() -> None:
    found = [
        f"{path.relative_to(ROOT.parent)} imports {name}"
        for package in DOMAIN
        for path in _files(package)
        for name in _imports(path)
        if name.split(".")[0] == "dagster" or name.startswith("dagster_")
    ]
    assert not found


def test_the_domain_packages_import_each_other_one_way() -> None:
    graph: dict[str, set[str]] = {package: set() for package in DOMAIN}
    for package in DOMAIN:
        for path in _files(package):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] == "mlplatform" and len(parts) > 1 and parts[1] in DOMAIN:
                    graph[package].add(parts[1])
        graph[package].discard(package)
    cycle = _cycle(graph)
    assert cycle is None, f"packages import in a circle: {' -> '.join(cycle)}"


# tuning hands a multi-worker study to distributed's supervisor, whose worker processes run
# tuning's trial loop: tuning imports it inside that one function, the one circle left.
KNOWN_IMPORTS_BACK = {("mlplatform.training.tuning", "mlplatform.training.distributed")}


def test_no_package_holds_modules_that_import_in_a_circle() -> None:
    for package in DOMAIN:
        modules = {_module(path): path for path in _files(package)}
        graph = {
            name: {
                imported
                for imported in _imports(path)
                if imported in modules and imported != name and not name.endswith(package)
            }
            for name, path in modules.items()
        }
        for importer, imported in KNOWN_IMPORTS_BACK:
            graph.get(importer, set()).discard(imported)
        cycle = _cycle(graph)
        assert cycle is None, f"{package}: modules import in a circle: {' -> '.join(cycle)}"
