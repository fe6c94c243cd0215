"""The import graph of the mrcnn package (module-level imports, read with ast, nothing run):
no cycles; the network package (mrcnn/model) never imports training, the commands or the
figures; every import of an mrcnn module inside a function says why it is there."""

from __future__ import annotations

import ast
from pathlib import Path

import mrcnn

PACKAGE_DIR = Path(mrcnn.__file__).parent
#: What nothing under mrcnn/model may import (it sits below them).
ABOVE_THE_NETWORK = ("mrcnn.training", "mrcnn.commands", "mrcnn.visualize")
#: Function-level imports not yet given their one-line reason: this file's code moves with the
#: split of visualize.py (issue 14, item 4), which places them.
WHY_PENDING: set[str] = set()


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file of every module of the package at ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imported(node: ast.Import | ast.ImportFrom, here: str, modules: set[str]) -> list[str]:
    """The package's modules an import statement in module ``here`` loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    assert not node.level, f"{here}:{node.lineno}: relative import; name the module in full"
    base = node.module or ""
    found = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
    return found or ([base] if base in modules else [])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]):
    """Import statements run when the module is imported (not in functions, nor under
    ``if TYPE_CHECKING:``)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from _module_level(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _module_level(getattr(node, field, []) or [])


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level."""
    files = module_names(root, package)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = {
            target
            for node in _module_level(tree.body)
            for target in _imported(node, name, set(files))
            if target != name
        }
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(_cycle_through(sorted(group), graph))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _cycle_through(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A path from group[0] back to itself inside the group (breadth first)."""
    members, start = set(group), group[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    return group


def _all_imports(tree: ast.AST, here: str, modules: set[str]):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _imported(node, here, modules):
                yield node, target


def test_no_import_cycles_among_mrcnn_modules():
    cycles = find_cycles(import_graph(PACKAGE_DIR, "mrcnn"))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_network_package_imports_nothing_above_it():
    files = module_names(PACKAGE_DIR, "mrcnn")
    wrong = []
    for name, path in files.items():
        if not name.startswith("mrcnn.model"):
            continue
        for node, target in _all_imports(ast.parse(path.read_text()), name, set(files)):
            if target.startswith(ABOVE_THE_NETWORK):
                wrong.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno} {target}")
    assert not wrong, "mrcnn/model imports what sits above it: " + ", ".join(wrong)


def test_every_function_level_mrcnn_import_says_why():
    """Such an import is kept only for an optional dependency or start-up time, with a
    ``# why`` comment in the function before it."""
    files = module_names(PACKAGE_DIR, "mrcnn")
    unexplained = []
    for name, path in files.items():
        if name in WHY_PENDING:
            continue
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node, _ in _all_imports(function, name, set(files)):
                before = lines[function.lineno - 1 : node.lineno - 1]
                if not any(line.strip().lower().startswith("# why") for line in before):
                    unexplained.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno}")
    assert not unexplained, "function-level imports without a # why: " + ", ".join(
        sorted(set(unexplained))
    )


def test_a_planted_cycle_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.b import B\n")
    (package / "a.py").write_text("from pkg.sub import b\n\ndef f():\n    import pkg.c\n")
    (package / "sub" / "b.py").write_text("from pkg import c\nB = 1\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
    )
    graph = import_graph(package, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.c"] == set()
    assert find_cycles(graph) == []
    (package / "c.py").write_text("try:\n    from pkg.a import f\nexcept ImportError:\n    pass\n")
    assert find_cycles(import_graph(package, "pkg")) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
