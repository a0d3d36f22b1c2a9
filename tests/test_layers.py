"""The package's layout holds: subpackages import only the layers below them (docs/architecture.md),
no import cycles (counting imports inside functions and under TYPE_CHECKING), no module over
500 lines, Typer only in the CLI and Ray only in the Ray executor."""

from __future__ import annotations

import ast
from pathlib import Path

import restore_cli

PACKAGE = Path(restore_cli.__file__).parent
ALLOWED = {
    "cli": {"batch", "quality", "training", "bench", "engine", "io", "model", "errors", ""},
    "bench": {"engine", "io", "model", "quality", "errors"},
    "training": {"quality", "engine", "io", "model", "errors"},
    "batch": {"engine", "io", "model", "errors"},
    "quality": {"engine", "io", "model", "errors"},
    "engine": {"model", "errors"},
    "io": {"errors"},
    "model": {"errors"},
    "errors": set(),
    "": {"engine", "io", "model", "training", "errors"},
}
"""What each top-level part may import ('' is the package's own __init__, the public API)."""


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("restore_cli", *parts))
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(path: Path) -> set[str]:
    """Every restore_cli module a file imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("restore_cli")}


def _part(module: str) -> str:
    """The top-level part a module belongs to; ``python -m restore_cli`` is the CLI's."""
    parts = module.split(".")
    if len(parts) == 1:
        return ""
    return "cli" if parts[1] == "__main__" else parts[1]


MODULES = _modules()
GRAPH = {name: {imported for imported in _imports(path) if imported in MODULES and imported != name} for name, path in MODULES.items()}


def test_each_part_imports_only_the_layers_below_it() -> None:
    wrong = [
        f"{module} imports {imported}"
        for module, imported_modules in GRAPH.items()
        for imported in imported_modules
        if _part(imported) != _part(module) and _part(imported) not in ALLOWED[_part(module)]
    ]
    assert wrong == []


def test_there_is_no_import_cycle() -> None:
    """Packages' __init__ modules are left out: importing a submodule runs its package's
    __init__ first, which is an edge of the interpreter's, not of the code's."""
    graph = {name: {target for target in targets if MODULES[target].name != "__init__.py"} for name, targets in GRAPH.items()}
    visiting: list[str] = []
    done: set[str] = set()
    cycles = []

    def visit(module: str) -> None:
        if module in visiting:
            cycles.append(visiting[visiting.index(module) :] + [module])
            return
        if module in done:
            return
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert cycles == []


def test_no_module_is_over_500_lines() -> None:
    long = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert {name: lines for name, lines in long.items() if lines > 500} == {}


RAY_MODULES = {f"restore_cli.batch.ray_{part}" for part in ("driver", "dispatch", "worker", "failures")}
"""The driver process's and the workers' modules. The `restore` process's side of the Ray
engine (ray_executor, ray_protocol) never imports Ray: its driver runs in a child process."""


def test_typer_only_in_the_cli_and_ray_only_in_the_ray_driver_and_workers() -> None:
    def importers(library: str) -> set[str]:
        return {
            name
            for name, path in MODULES.items()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if (isinstance(node, ast.Import) and any(alias.name.split(".")[0] == library for alias in node.names))
            or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == library and node.level == 0)
        }

    assert {name for name in importers("typer") if _part(name) != "cli"} == set()
    assert importers("ray") == RAY_MODULES
