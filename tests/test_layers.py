"""The house plan of the mrcnn package, read with ast (nothing run): every import counts
(module level, inside functions, lazy ``__getattr__`` ones, ``TYPE_CHECKING`` ones); no import
cycle; each module sits in a layer and imports nothing from a layer above its own; every import
of an mrcnn module inside a function says why it is there; the size rules (modules at the top,
lines per module and per function); nothing edits the import path."""

from __future__ import annotations

import ast
from pathlib import Path

import mrcnn

PACKAGE_DIR = Path(mrcnn.__file__).parent
REPO = PACKAGE_DIR.parent
#: The layers, lowest first: a module may import its own layer and those below, never one above.
#: Each entry names modules and packages (a package stands for everything under it).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("mrcnn.config", "mrcnn.config_checks", "mrcnn.conventions", "mrcnn.outputs")),
    ("structures", ("mrcnn.structures",)),
    ("modeling", ("mrcnn.modeling",)),
    ("weights", ("mrcnn.weights",)),
    ("data", ("mrcnn.datasets", "mrcnn.evaluation")),
    ("training", ("mrcnn.training",)),
    ("compat", ("mrcnn.compat",)),
    ("facade", ("mrcnn.maskrcnn",)),
    (
        "applications",
        (
            "mrcnn.splash",
            "mrcnn.drawing",
            "mrcnn.deploy",
            "mrcnn.tracking",
            "mrcnn.demo",
            "mrcnn.inspect",
            "mrcnn.labelling",
        ),
    ),
    ("commands", ("mrcnn.commands", "mrcnn.cli", "mrcnn.__main__")),
    # Matterport's names and the package's own face: re-exports only, on the top floor.
    (
        "faces",
        (
            "mrcnn",
            "mrcnn.model",
            "mrcnn.utils",
            "mrcnn.visualize",
            "mrcnn.dataset",
            "mrcnn.testing",
        ),
    ),
]
MAX_TOP_LEVEL_MODULES = 16
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
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


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere: at module level, inside functions
    (lazy imports, ``__getattr__`` included) and under ``if TYPE_CHECKING:``."""
    files = module_names(root, package)
    return {
        name: {
            target
            for _, target in _all_imports(ast.parse(path.read_text(), str(path)), name, set(files))
            if target != name
        }
        for name, path in files.items()
    }


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


def layer_of(module: str, layers=LAYERS) -> int:
    """The index of ``module``'s layer (the longest matching entry wins: ``mrcnn`` itself is a
    face, ``mrcnn.splash.video`` belongs to ``mrcnn.splash``)."""
    best, index = "", -1
    for number, (_, members) in enumerate(layers):
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > len(best):
                if member == "mrcnn" and module != "mrcnn":
                    continue  # the package face stands for itself, not for what is under it
                best, index = member, number
    return index


def upward_imports(root: Path, package: str, layers=LAYERS) -> list[str]:
    """Every import of a module from a layer above the importer's, as ``file:line a -> b``."""
    files = module_names(root, package)
    wrong = []
    for name, path in files.items():
        here = layer_of(name, layers)
        for node, target in _all_imports(ast.parse(path.read_text()), name, set(files)):
            if layer_of(target, layers) > here:
                wrong.append(
                    f"{path.relative_to(root.parent)}:{node.lineno} {name} ({layers[here][0]}) "
                    f"-> {target} ({layers[layer_of(target, layers)][0]})"
                )
    return wrong


def test_every_module_sits_in_a_layer():
    unplaced = [name for name in module_names(PACKAGE_DIR, "mrcnn") if layer_of(name) < 0]
    assert not unplaced, f"modules in no layer of LAYERS: {unplaced}"


def test_nothing_imports_a_layer_above_its_own():
    wrong = upward_imports(PACKAGE_DIR, "mrcnn")
    assert not wrong, "imports from a layer above: " + "; ".join(wrong)


def test_a_planted_upward_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("")
    (package / "low" / "a.py").write_text("X = 1\n")
    (package / "high.py").write_text("from pkg.low.a import X\n")
    layers = [("faces", ("pkg",)), ("low", ("pkg.low",)), ("high", ("pkg.high",))]
    layers = [layers[1], layers[2], layers[0]]
    assert upward_imports(package, "pkg", layers) == []
    (package / "low" / "a.py").write_text("def f():\n    from pkg import high\n")
    assert upward_imports(package, "pkg", layers) == [
        "pkg/low/a.py:2 pkg.low.a (low) -> pkg.high (high)"
    ]


def test_at_most_16_modules_at_the_top_of_the_package():
    top = sorted(path.name for path in PACKAGE_DIR.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules at the top of mrcnn/: {top}"


def test_no_module_over_500_lines_and_no_function_over_60():
    long_modules, long_functions = [], []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(REPO)
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append(f"{where} ({text.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_nothing_edits_the_import_path():
    """Tests are a package, benchmarks and tools import the installed mrcnn (run with
    ``python -m`` from the repository's root): none of them edits the import path."""
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("mrcnn", "tests", "benchmarks", "tools", "samples")
        for path in sorted((REPO / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "sys" + ".path" in line
    ]
    assert not found, f"import-path manipulation: {found}"


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
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("from pkg import c\nB = 1\n")
    (package / "c.py").write_text("C = 1\n")
    graph = import_graph(package, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.c"] == set()
    assert find_cycles(graph) == []
    cycle = [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
    lazy = "def __getattr__(name):\n    from pkg.a import f\n    return f\n"
    type_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
    guarded = "try:\n    from pkg.a import f\nexcept ImportError:\n    pass\n"
    for closing in (lazy, type_only, guarded):
        (package / "c.py").write_text(closing)
        assert find_cycles(import_graph(package, "pkg")) == cycle, closing
