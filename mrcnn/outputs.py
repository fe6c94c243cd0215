"""Input and output files of the commands: which files of a folder are read (images, videos),
and output paths, checked before any model work and never clobbered.

The rules (docs/cli.md): a command never writes over an input file, nor over a file
it did not create, unless ``--overwrite`` names the user's wish; a folder that cannot be written
is reported before loading a model; and a folder the demo replaces wholesale must carry the
demo's marker.

Every output file is written through :func:`atomic_output` (or :func:`write_output`, its
bytes/text form): to a temporary ``.<stem>.mrcnn-tmp-<pid><suffix>`` beside it, which follows the
umask, is checked not to be one of the run's inputs, and is renamed over the output only when
complete. A full disk is reported in one line naming the output (:class:`OutputWriteError`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

#: File an ``mrcnn demo`` output folder carries, so that a later demo may replace the folder.
DEMO_MARKER = ".mrcnn-demo"
#: File suffixes the commands treat as images and as videos (lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")


class OutputError(ValueError):
    """An output path that cannot or must not be written; the message says what to do."""


class OutputWriteError(OSError):
    """Writing an output failed for want of space (or quota); one line naming the path."""


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
    inputs = list(inputs)
    protect_inputs(inputs)
    input_set = {_identity(p) for p in inputs}
    targets = [Path(t) for t in targets]
    over_inputs = [t for t in targets if t.exists() and _identity(t) in input_set]
    if over_inputs:
        raise OutputError(
            f"{flag} would write {_some(over_inputs)} over input files of this run; choose "
            "another output name or folder (inputs are never replaced, even with --overwrite)"
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
    write_output(
        path / DEMO_MARKER,
        "written by mrcnn demo; a later demo with this --out replaces this folder\n",
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
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return candidate
        except FileExistsError:
            k += 1
            candidate = path.with_name(f"{path.stem}_{k}{path.suffix}")


# ------------------------------------------------------------------------------------------------
# Writing an output: the one helper every writer goes through
# ------------------------------------------------------------------------------------------------
#: Marks this project's temporary files: ``.<stem>.mrcnn-tmp-<pid>[-<label>]<suffix>``.
TEMPORARY_TAG = ".mrcnn-tmp-"
#: Inputs of this process's run (registered by :func:`check_new_outputs`, :func:`protect_inputs`):
#: :func:`atomic_output` never renames a file over one of them.
_PROTECTED: dict[str, None] = {}
#: Bytes :func:`_out_of_space` tries to add to a failed output to tell a full disk.
_PROBE_BYTES = 1 << 20
#: How a library that hides the errno words a full disk or quota.
_NO_SPACE = re.compile(r"no space left|storagefull|os error 28|code: 28\b", re.IGNORECASE)
_NO_QUOTA = re.compile(r"quota exceeded|quotaexceeded|os error 122|code: 122\b", re.IGNORECASE)


def protect_inputs(paths: Iterable[str | os.PathLike]) -> None:
    """Register files this run reads: no output is ever renamed over them (nor over a link to
    them, nor another name of the same file)."""
    for path in paths:
        if path is not None and str(path):
            _PROTECTED[str(path)] = None


def forget_inputs() -> None:
    """Drop the registered inputs (a new command run in the same process starts afresh)."""
    _PROTECTED.clear()


def refuse_input(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Raise OutputError when ``path`` is (a link to, or another name of) one of ``inputs`` or
    of the registered inputs: compared by resolved path and by device and inode."""
    path = Path(path)
    for candidate in [*(str(p) for p in inputs if p is not None), *_PROTECTED]:
        if _same_file(path, Path(candidate)):
            raise OutputError(
                f"{path} is an input of this run ({candidate}); inputs are never written over, "
                "even with --overwrite: choose another output name"
            )


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()
) -> Iterator[Path]:
    """Write the output ``path`` through a temporary file beside it; yield that file's path.

    The caller writes the temporary (same folder and suffix, so that libraries choosing a
    format by extension still do). When the block ends without error the file is synced, given
    the mode a new file gets under the umask, and renamed over ``path``; on any error it is
    removed and ``path`` is untouched. Stale temporaries of an earlier, killed writer of the
    same output are removed first.

    Raises:
        OutputError: ``path`` is one of ``inputs`` (or a registered input), a folder, or in a
            folder that does not exist.
        OutputWriteError: the disk (or quota) was full, however the library reported it.
    """
    path = Path(path)
    inputs = list(inputs)
    refuse_input(path, inputs)
    _check_target_place(path)
    remove_stale_temporaries(path)
    temporary = temporary_beside(path)
    mode = temporary.stat().st_mode & 0o777  # 0666 less the umask, as open() made it
    try:
        yield temporary
        _sync(temporary)
        if not temporary.is_symlink():  # never change the mode of what a link points to
            os.chmod(temporary, mode)
        refuse_input(path, inputs)
        os.replace(temporary, path)
    except Exception as error:
        cause = write_failure(error, temporary)
        temporary.unlink(missing_ok=True)
        if cause:
            raise OutputWriteError(f"cannot write {path}: {cause}") from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_output(
    path: str | os.PathLike, data: bytes | str, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` with :func:`atomic_output`; return ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_output(path, inputs) as temporary, open(temporary, "wb") as stream:
        stream.write(payload)
    return Path(path)


def _check_target_place(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"output {path} is an existing folder; give a file name, or move it")
    if not path.parent.is_dir():
        what = "is a file" if path.parent.exists() else "does not exist"
        raise OutputError(f"cannot write {path}: the folder {path.parent} {what}; create it first")


def temporary_beside(path: str | os.PathLike, label: str = "") -> Path:
    """Create (exclusively, mode 0666 less the umask) and return this process's temporary file
    for ``path``: ``.<stem>.mrcnn-tmp-<pid>[-<label>][-<k>]<suffix>`` in the same folder."""
    path = Path(path)
    tail = f"-{label}" if label else ""
    for k in range(1000):
        more = f"-{k}" if k else ""
        name = f".{path.stem}{TEMPORARY_TAG}{os.getpid()}{tail}{more}{path.suffix}"
        candidate = path.with_name(name)
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return candidate
        except FileExistsError:
            continue
    raise OutputError(f"cannot create a temporary file for {path}: 1000 names are taken")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``path`` that a killed writer left: those whose process is
    gone, or started after the file was last written (its pid was reused)."""
    path = Path(path)
    pattern = re.compile(
        rf"^\.{re.escape(path.stem)}{re.escape(TEMPORARY_TAG)}(\d+)(-[\w-]+)?"
        rf"{re.escape(path.suffix)}$"
    )
    removed = []
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            match = pattern.match(entry.name)
            if match and _is_stale(entry, int(match.group(1))):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def _is_stale(temporary: Path, pid: int) -> bool:
    try:
        written = temporary.lstat().st_mtime
    except OSError:
        return False
    started = _process_started(pid)
    if started is None:
        return not _alive(pid)
    return started > written + 1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from /proc; None when it is gone
    or /proc cannot tell (then only whether it lives is known)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _sync(path: Path) -> None:
    """Flush ``path`` to the disk, so that a full disk shows now and not after the rename."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_failure(error: BaseException, temporary: str | os.PathLike | None = None) -> str:
    """ "no space left on device" / "disk quota exceeded" when ``error`` (or an error it wraps,
    or, for libraries that hide the cause, a probe write to ``temporary``) says so; else ""."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = _errno_cause(getattr(current, "errno", None)) or _text_cause(str(current))
        if cause:
            return cause
        current = current.__cause__ or current.__context__
    if temporary is not None and not isinstance(error, (OutputError, ValueError)):
        return _out_of_space(Path(temporary))
    return ""


def _errno_cause(number: object) -> str:
    if number == errno.ENOSPC:
        return "no space left on device; free some space or write elsewhere"
    if number == getattr(errno, "EDQUOT", -1):
        return "disk quota exceeded; free some space or write elsewhere"
    if number == errno.EFBIG:
        return "file too large (over the file-size limit, ulimit -f, or the file system's)"
    return ""


def _text_cause(text: str) -> str:
    if _NO_SPACE.search(text):
        return _errno_cause(errno.ENOSPC)
    if _NO_QUOTA.search(text):
        return _errno_cause(getattr(errno, "EDQUOT", -1))
    return ""


def _out_of_space(temporary: Path) -> str:
    """Try to add a little to ``temporary`` (deleted next anyway): the errno of a failing
    write tells a full disk when the library that failed did not say why."""
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return ""
    try:
        rest = memoryview(bytes(_PROBE_BYTES))
        while rest:  # a write that reaches the limit is cut short; the next one says why
            rest = rest[os.write(descriptor, rest) :]
        os.fsync(descriptor)
    except OSError as probe:
        return _errno_cause(probe.errno)
    finally:
        os.close(descriptor)
    return ""


def drop_reservation(path: str | os.PathLike) -> None:
    """Remove the empty file :func:`free_output_path` made to reserve ``path``, if unwritten."""
    with contextlib.suppress(OSError):
        if Path(path).stat().st_size == 0:
            Path(path).unlink()


@contextlib.contextmanager
def reserved_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield ``path`` (named by :func:`free_output_path`); on an error, drop its reservation."""
    try:
        yield Path(path)
    except BaseException:
        drop_reservation(path)
        raise


def keep_partial(temporary: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move an unfinished output's temporary to a free ``<stem>.partial<suffix>`` beside
    ``path`` (a name that says it is incomplete), with the umask's mode; return that name."""
    path = Path(path)
    target = free_output_path(path.with_name(f"{path.stem}.partial{path.suffix}"))
    os.chmod(temporary, Path(target).stat().st_mode & 0o777)
    os.replace(temporary, target)
    return target
