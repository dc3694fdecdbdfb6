"""The folder tree is the architecture, and these tests keep it true: the core depends on nothing
but the standard library and pydantic, nothing depends on the command line, no module imports
itself round a cycle, and no module grows past a size a newcomer can read in one go."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "addon" / "pollwatch"
FORBIDDEN_IN_CORE = {"mitmproxy", "sqlite3", "sqlite_utils", "click", "rich", "httpx", "yaml", "opentelemetry",
                     "google"}
MAX_LINES = 400
LAYERS = ("core", "logs", "otel", "mitm", "sources", "store", "share", "report", "live", "cli", "demo", "testing")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module name an import statement in `path` names (relative imports resolved)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {m: {i for i in imported_names(p) if i in MODULES and i != m} for m, p in MODULES.items()}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_package_has_one_sub_package_per_layer():
    assert {layer(m) for m in MODULES} - {None} == set(LAYERS)


@pytest.mark.parametrize("module", [m for m in MODULES if layer(m) == "core"])
def test_core_imports_only_the_standard_library_pydantic_and_itself(module):
    names = imported_names(MODULES[module])
    third_party = {n.split(".")[0] for n in names} & FORBIDDEN_IN_CORE
    outside = {n for n in names if n in MODULES and layer(n) != "core" and n != "pollwatch"}
    assert not third_party and not outside, f"{module} imports {sorted(third_party | outside)}"


def test_nothing_outside_the_command_line_imports_it():
    offenders = {m: sorted(i for i in GRAPH[m] if layer(i) == "cli") for m in MODULES if layer(m) != "cli"}
    assert not {m: i for m, i in offenders.items() if i}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: every group of modules that import each other, directly or round about."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_there_is_no_import_cycle():
    assert strongly_connected(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_too_long_to_read_in_one_go(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by concern"


ALLOWED = {
    "core": set(),
    "logs": {"core", "otel"},
    "otel": {"core", "store"},
    "store": {"core"},
    "mitm": {"core", "store", "logs", "live"},
    "sources": {"core", "store", "mitm", "logs"},
    "share": {"core", "store", "mitm", "sources", "logs"},
    "report": {"core", "store"},
    "live": {"core", "store", "report"},
    "demo": {"core", "mitm"},
    "testing": {"core", "store", "mitm", "demo"},
    "cli": set(LAYERS) - {"cli"},
}
"""Which layers each layer may import (imports inside functions count too): the table in README's
Architecture section. Top-level modules (`errors`, `contract_file`, the package itself) are
leaves every layer may use."""


def test_each_layer_imports_only_the_layers_beneath_it():
    wrong = {}
    for module, path in MODULES.items():
        own = layer(module)
        if own is None:
            continue
        reached = {layer(i) for i in imported_names(path) if i in MODULES} - {None, own}
        if reached - ALLOWED[own]:
            wrong[module] = sorted(reached - ALLOWED[own])
    assert wrong == {}


def test_layers_point_one_way():
    assert strongly_connected({k: set(v) for k, v in ALLOWED.items()}) == []
