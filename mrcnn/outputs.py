"""Output folders the commands write into: checked before any model work, never clobbered.

The rules (docs/cli.md): a command never writes over an input file, nor over a file it did not
create, unless ``--overwrite`` names the user's wish; a folder that cannot be written is reported
before loading a model; and a folder the demo replaces wholesale must carry the demo's marker.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

#: File an ``mrcnn demo`` output folder carries, so that a later demo may replace the folder.
DEMO_MARKER = ".mrcnn-demo"


class OutputError(ValueError):
    """An output path that cannot or must not be written; the message says what to do."""


def check_writable_dir(path: str | os.PathLike, flag: str) -> Path:
    """Refuse an output folder that is a file or that cannot be created or written.

    Nothing is created. ``flag`` names the option in messages (``--output``, ``--logs``).

    Raises:
        OutputError: one line naming the path and what to do.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is an existing file, not a folder; give a folder path")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{flag} {path}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "folder" if existing == path else f"folder {path} cannot be created: {existing}"
        raise OutputError(
            f"{flag} {path}: the {what} is not writable; choose a folder you can write to "
            "or change its permissions"
        )
    return path


def check_new_outputs(
    targets: Iterable[str | os.PathLike],
    inputs: Iterable[str | os.PathLike],
    overwrite: bool,
    flag: str = "--output",
) -> None:
    """Refuse to write any of ``targets`` over an input, or over an existing file without
    ``overwrite``.

    Raises:
        OutputError: naming the first colliding files and the way out.
    """
    input_set = {_identity(p) for p in inputs}
    targets = [Path(t) for t in targets]
    over_inputs = [t for t in targets if t.exists() and _identity(t) in input_set]
    if over_inputs:
        raise OutputError(
            f"{flag} would write {_some(over_inputs)} over input files; choose another "
            f"{flag} folder (inputs are never replaced, even with --overwrite)"
        )
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing and not overwrite:
        raise OutputError(
            f"{len(existing)} output file(s) exist already ({_some(existing)}); pass "
            f"--overwrite to replace them, or choose another {flag} folder"
        )
    directories = [t for t in existing if t.is_dir()]
    if directories:
        raise OutputError(f"output {_some(directories)} is a folder; move it away first")


def spec_files(spec: str) -> list[str]:
    """The existing files a dataset spec names (``coco:ANNOTATIONS[:IMAGES]``,
    ``via3:FILE?options``, ...): inputs that no output may replace."""
    parts = (part.split("?", 1)[0] for part in str(spec).split(":")[1:])
    return [part for part in parts if part and Path(part).is_file()]


def _identity(path: str | os.PathLike) -> tuple:
    path = Path(path)
    try:
        stat = path.stat()
        return (stat.st_dev, stat.st_ino)
    except OSError:
        return (str(path.resolve()),)


def _some(paths: list[Path], shown: int = 3) -> str:
    text = ", ".join(str(p) for p in paths[:shown])
    return text + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def prepare_demo_folder(path: str | os.PathLike) -> Path:
    """Create the demo's output folder, replacing it only when an earlier demo made it.

    A missing or empty folder is used; a folder holding :data:`DEMO_MARKER` is emptied and
    reused; anything else is refused, so a mistyped ``--out`` cannot delete the user's files.

    Raises:
        OutputError: ``path`` is a file, or a folder with content the demo did not write.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {path} is a file; give a folder for the demo's output")
    if path.is_dir() and any(path.iterdir()):
        if not (path / DEMO_MARKER).is_file():
            raise OutputError(
                f"--out {path} exists and was not written by mrcnn demo; nothing was deleted. "
                "Choose a new or empty folder"
            )
        shutil.rmtree(path)
    check_writable_dir(path, "--out")
    path.mkdir(parents=True, exist_ok=True)
    (path / DEMO_MARKER).write_text(
        "written by mrcnn demo; a later demo with this --out replaces this folder\n"
    )
    return path
