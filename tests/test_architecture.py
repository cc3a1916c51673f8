"""The package's shape, read from its source (nothing is imported): the rules of the house in
docs/ARCHITECTURE.md that a reader relies on and a change could quietly break."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "whispercli"
MAX_SERVER_ROOT_MODULES = 12
MAX_FUNCTION_BODY_LINES = 80


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages by __init__)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _resolve(name: str) -> str | None:
    """The package module ``name`` refers to (a name inside a module: that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names an import statement reaches (``from P import x``: P and P.x)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        here = module.split(".")
        if MODULES[module].name != "__init__.py":
            here = here[:-1]
        here = here[: len(here) - (node.level - 1)]
        base = ".".join([*here, *([node.module] if node.module else [])])
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)


def _edges() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (inside functions too), except in
    ``if TYPE_CHECKING:`` blocks."""
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text("utf-8"))
        skipped = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in skipped:
                continue
            for name in _imported(module, node):
                target = _resolve(name)
                if target is not None and target != module:
                    edges[module].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for module in sorted(set(MODULES) | set(edges)):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_edges()) == []


def test_only_the_server_and_the_cli_import_the_server() -> None:
    allowed = ("whispercli.server", "whispercli.cli")
    leaks = sorted(
        f"{module} -> {target}"
        for module, targets in _edges().items()
        for target in targets
        if target.startswith("whispercli.server")
        and not any(module == a or module.startswith(a + ".") for a in allowed)
    )
    assert leaks == []


def test_the_server_folder_shows_its_parts() -> None:
    root = [p.name for p in (PACKAGE / "server").glob("*.py")]
    assert len(root) <= MAX_SERVER_ROOT_MODULES, sorted(root)
    folders = {p.name for p in (PACKAGE / "server").iterdir() if (p / "__init__.py").exists()}
    assert {"api", "jobs", "storage", "engine", "scale", "webhooks", "vendors"} <= folders


def test_one_class_per_name() -> None:
    owners: dict[str, list[str]] = defaultdict(list)
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ClassDef):
                owners[node.name].append(module)
    assert {name: where for name, where in owners.items() if len(where) > 1} == {}


def test_no_function_body_is_longer_than_a_screen() -> None:
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
                lines = (node.end_lineno or 0) - node.body[0].lineno + 1
                if lines > MAX_FUNCTION_BODY_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


def test_the_checks_see_a_cycle_and_a_leak() -> None:
    """The graph is read right: a known edge of each kind is there."""
    edges = _edges()
    assert "whispercli.server.app" in edges["whispercli.server.hosting"]  # inside a function
    assert "whispercli.client" not in edges["whispercli.backends.base"]  # TYPE_CHECKING only
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
