"""Issue 31, rule 6: every output file is written by the one helper, mrcnn.outputs.atomic_output
(atomic, the umask's mode, never an input, a full disk in one line).

The package is read with ast (nothing run). A call that writes a file (``open`` for writing,
``os.open`` with write flags, ``.write_text``, ``.write_bytes``, ``cv2.imwrite``, ``.save`` of
torch, onnx, numpy, PIL or an exported program, ``save_file``, ``.savefig``, ``VideoWriter``,
``av.open(..., "w")``, ``os.replace``, ``shutil.copy`` ...) must sit inside a
``with atomic_output(...)`` block of its function, or be listed in :data:`ALLOWED` with the
reason it is not an output write (or the owner who still has to move it to the helper).
"""

from __future__ import annotations

import ast
from pathlib import Path

import mrcnn

PACKAGE_DIR = Path(mrcnn.__file__).parent

#: Names whose call writes a file, whatever the receiver.
WRITING_CALLS = {
    "write_text",
    "write_bytes",
    "imwrite",
    "save_file",
    "savefig",
    "VideoWriter",
    "tofile",
}
#: Dotted calls that write or move files.
WRITING_DOTTED = {
    "os.replace",
    "os.rename",
    "shutil.copy",
    "shutil.copy2",
    "shutil.copyfile",
    "shutil.move",
}
#: os.open flags that make it a write.
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}

#: (file under mrcnn/, function, call) -> why this write does not go through atomic_output.
ALLOWED: dict[tuple[str, str, str], str] = {
    # The helper itself.
    ("outputs.py", "temporary_beside", "os.open"): "creates the helper's own temporary file",
    ("outputs.py", "atomic_output", "os.replace"): "the helper's rename into place",
    ("outputs.py", "keep_partial", "os.replace"): "moves an unfinished temporary to .partial",
    ("outputs.py", "free_output_path", "os.open"): "reserves a free name with an empty file",
    ("outputs.py", "_out_of_space", "os.open"): "probes a failed temporary for a full disk",
    # Writers handed the temporary that atomic_output yielded to their caller.
    ("splash/video.py", "_open_writer", "VideoWriter"): "opens process_video's temporary",
    ("splash/video.py", "_join_audio", "os.replace"): "moves frames onto the temporary",
    ("splash/audio.py", "_write", "open"): "av.open of process_video's temporary",
    # Written into a temporary folder that is renamed into place whole (a cache entry).
    ("deploy/openvino_backend.py", "store_graph", "write_text"): "made_from.json of a cache entry",
    # Not output files.
    ("drawing/display.py", "show_in_notebook", "savefig"): "renders into memory (BytesIO)",
    ("weights/checkpoint.py", "acquire", "open"): "the run folder's lock file",
    ("training/run_log.py", "_append", "open"): "metrics.jsonl: an append-only log, a line a step",
}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _call_name(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


def _open_mode(call: ast.Call) -> str:
    mode = call.args[1] if len(call.args) > 1 else None
    mode = next((k.value for k in call.keywords if k.arg == "mode"), mode)
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else ""


def writing_call(call: ast.Call) -> str:
    """What ``call`` writes with ("open", "os.replace", ...), or "" when it writes nothing."""
    name, dotted = _call_name(call), _dotted(call.func)
    if dotted in WRITING_DOTTED:
        return dotted
    if dotted == "os.open":
        flags = {n.attr for n in ast.walk(call) if isinstance(n, ast.Attribute)}
        return "os.open" if flags & WRITE_FLAGS else ""
    if name == "open":
        return "open" if set(_open_mode(call)) & set("wax+") else ""
    if name in WRITING_CALLS or (name == "save" and isinstance(call.func, ast.Attribute)):
        return name
    return ""


def _is_atomic_with(node: ast.AST) -> bool:
    return isinstance(node, (ast.With, ast.AsyncWith)) and any(
        isinstance(item.context_expr, ast.Call) and _call_name(item.context_expr) == "atomic_output"
        for item in node.items
    )


def unguarded_writes(tree: ast.AST, where: str) -> dict[tuple[str, str, str], int]:
    """(where, function, call) -> line of every writing call of ``tree`` that is not inside a
    ``with atomic_output(...)`` block."""
    found: dict[tuple[str, str, str], int] = {}

    def visit(node: ast.AST, function: str, guarded: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function, guarded = node.name, False
        guarded = guarded or _is_atomic_with(node)
        if isinstance(node, ast.Call) and not guarded and (what := writing_call(node)):
            found.setdefault((where, function, what), node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, function, guarded)

    visit(tree, "<module>", False)
    return found


def writes_outside_the_helper() -> dict[tuple[str, str, str], int]:
    """:func:`unguarded_writes` of every module of the package (file relative to mrcnn/)."""
    found: dict[tuple[str, str, str], int] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        where = path.relative_to(PACKAGE_DIR).as_posix()
        found.update(unguarded_writes(ast.parse(path.read_text(), str(path)), where))
    return found


def test_every_output_write_goes_through_the_helper():
    bypassing = {key: line for key, line in writes_outside_the_helper().items()}
    unexplained = [
        f"mrcnn/{file}:{line} {function}() calls {call}"
        for (file, function, call), line in bypassing.items()
        if (file, function, call) not in ALLOWED
    ]
    assert not unexplained, (
        "write outputs with mrcnn.outputs.atomic_output / write_output (or list the call in "
        "ALLOWED with the reason): " + "; ".join(unexplained)
    )


def test_the_allowlist_has_no_stale_entries():
    stale = sorted(set(ALLOWED) - set(writes_outside_the_helper()))
    assert not stale, f"ALLOWED lists calls that no longer exist: {stale}"


def test_the_scan_sees_each_kind_of_write():
    """The scan itself: each writer is caught outside the helper and passes inside it."""
    writes = [
        'open(path, "w")',
        'open(path, mode="ab")',
        'path.write_text("x")',
        "torch.save({}, path)",
        "program.save(path)",
        "save_file({}, path)",
        "cv2.imwrite(path, frame)",
        "cv2.VideoWriter(path, 0, 1, (2, 2))",
        "figure.savefig(path)",
        "os.replace(path, path)",
        "os.open(path, os.O_CREAT | os.O_WRONLY)",
        'av.open(path, "w")',
    ]
    reads = ["open(path)", "os.open(path, os.O_RDONLY)", '"text".replace("a", "b")']
    for line in writes:
        assert writing_call(ast.parse(line).body[0].value), line
    for line in reads:
        assert not writing_call(ast.parse(line).body[0].value), line
    source = "def f(path):\n    " + "\n    ".join(writes) + "\n"
    assert len(unguarded_writes(ast.parse(source), "x.py")) == 9  # distinct (function, call)
    guarded = (
        "def f(path):\n    with atomic_output(path) as temporary:\n        "
        + "\n        ".join(w.replace("path", "temporary") for w in writes)
        + "\n"
    )
    assert unguarded_writes(ast.parse(guarded), "x.py") == {}
