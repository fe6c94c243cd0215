"""Input and output files of the commands: which files of a folder are read (images, videos),
and output paths, checked before any model work and never clobbered.

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
#: File suffixes the commands treat as images and as videos (lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")


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


def list_inputs(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """``path`` itself if it is a file, else its files with one of ``suffixes``, sorted.

    Raises:
        FileNotFoundError: ``path`` does not exist, or a folder holds no such file.
        ValueError: ``path`` is neither a file nor a folder.
    """
    if path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if not path.is_dir():
        raise ValueError(f"input {path} is neither a file nor a folder")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not found:
        raise FileNotFoundError(f"no {', '.join(suffixes)} files in {path}")
    return found


def free_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``path`` itself if free (or ``overwrite``), else the first free ``<stem>_<k><suffix>``.

    The chosen name is reserved by creating an empty file exclusively, so two processes
    never pick the same one; writers replace that empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        return path
    candidate, k = path, 0
    while True:
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return candidate
        except FileExistsError:
            k += 1
            candidate = path.with_name(f"{path.stem}_{k}{path.suffix}")
