"""Checkpoints, beside the model (used by training and inference): atomic writing, run
folders, their locks, and finding the newest one.

A run folder is ``<model_dir>/<name>YYYYmmddTHHMMSS[_k]/`` (Matterport's ``<name>YYYYmmddTHHMM``
prefix, then seconds, then ``_2``, ``_3``, ... when that name is taken: every run gets its own
folder) and holds ``mrcnn_<name>_<epoch:04d>.pt`` files. While a process trains into a run
folder it holds an exclusive lock on its ``.lock`` file (``fcntl.flock``), so a second process
cannot resume into it; the kernel drops the lock when the process dies, so a stale lock file of
a killed run is ignored. A checkpoint is a dict ``{"format": "mrcnn", "version": 1,
"model": state_dict, "config": {...}, "epoch": int, ...}`` readable with
``torch.load(weights_only=True)``; :func:`mrcnn.weights.resolve.config_for_weights` reads the
config back.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from mrcnn.config import ARCHITECTURE_KEYS, _plain
from mrcnn.outputs import TEMPORARY_TAG, atomic_output, write_output

CHECKPOINT_VERSION = 1
_RUN_DIR = re.compile(r"^(?P<name>.+)(?P<stamp>\d{8}T\d{4})(?P<seconds>\d{2})?(?:_(?P<k>\d+))?$")
#: The lock file inside a run folder.
LOCK_FILE = ".lock"
#: Temporary files of :func:`atomic_torch_save` (left behind only by a killed process): the
#: helper's ``.<stem>.mrcnn-tmp-<pid>...``, and the ``.<name>.<random>.tmp`` of older versions.
_TEMPORARY = re.compile(rf"^\..+(\.tmp|{re.escape(TEMPORARY_TAG)}\d+.*)$")
_CHECKPOINT = re.compile(r"^mrcnn_(?P<name>.+)_(?P<epoch>\d{4,})\.pt$")
#: Checkpoints Matterport's training wrote into its run folders (``mask_rcnn_balloon_0030.h5``):
#: ``find_last`` finds them too, so a migrated logs folder keeps working.
_MATTERPORT_CHECKPOINT = re.compile(r"^mask_rcnn_(?P<name>.+)_(?P<epoch>\d{4,})\.h5$")
#: The training metrics of a run folder (see :mod:`mrcnn.training.run_log`).
METRICS_FILE = "metrics.jsonl"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` with torch.save through :func:`mrcnn.outputs.atomic_output` (a temporary
    file beside ``path``, renamed when complete; the umask's mode; a full disk in one line).

    A crash mid-write leaves the previous file (if any) intact and no partial file at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary, open(temporary, "wb") as stream:
        torch.save(obj, stream)
    return path


def checkpoint_payload(state_dict: dict, config, epoch: int, **extra: Any) -> dict[str, Any]:
    """The dict saved as a checkpoint (see module docstring)."""
    return {
        "format": "mrcnn",
        "version": CHECKPOINT_VERSION,
        "model": state_dict,
        "config": config.to_dict() if config is not None else {},
        "epoch": int(epoch),
        **extra,
    }


def checkpoint_name(name: str, epoch: int) -> str:
    return f"mrcnn_{name}_{epoch:04d}.pt"


def find_last(model_dir: str | os.PathLike, name: str | None = None) -> Path:
    """The newest checkpoint of the newest run folder under ``model_dir``: this package's
    ``mrcnn_<name>_<epoch>.pt`` or Matterport's ``mask_rcnn_<name>_<epoch>.h5``.

    Args:
        name: only run folders of this config NAME (lower-cased as in folder names).
    Raises:
        FileNotFoundError: naming the folder searched, when there is no checkpoint.
    """
    model_dir = Path(model_dir)
    runs = []
    if model_dir.is_dir():
        for entry in model_dir.iterdir():
            match = _RUN_DIR.match(entry.name)
            if entry.is_dir() and match and (name is None or match["name"] == name.lower()):
                runs.append((_run_order(match), entry.name, entry))
    for _, _, run in sorted(runs, reverse=True):
        checkpoints = sorted(
            (int(m["epoch"]), p)
            for p in run.iterdir()
            if (m := _CHECKPOINT.match(p.name) or _MATTERPORT_CHECKPOINT.match(p.name))
        )
        if checkpoints:
            return checkpoints[-1][1]
    which = f" for NAME={name!r}" if name else ""
    raise FileNotFoundError(
        f"no checkpoint{which} under {model_dir.resolve()}: train first, or pass a weights file"
    )


def _run_order(match: re.Match) -> tuple[str, str, int]:
    """Sort key of a run folder name: time stamp, seconds (absent in old names), then k."""
    return (match["stamp"], match["seconds"] or "", int(match["k"] or 1))


def new_run_dir(model_dir: str | os.PathLike, name: str | None, now=None) -> Path:
    """``<model_dir>/<name>YYYYmmddTHHMMSS`` for a new training run (not created here; see
    :func:`create_run_dir`, which also makes the name unique).

    Args:
        name: the config NAME (lower-cased; "mrcnn" when None).
        now: a datetime (default: the current local time).
    """
    now = now or datetime.datetime.now()
    return Path(model_dir) / f"{(name or 'mrcnn').lower()}{now:%Y%m%dT%H%M%S}"


def create_run_dir(model_dir: str | os.PathLike, name: str | None, now=None) -> Path:
    """Create and return a run folder that no other run uses.

    ``new_run_dir``'s name, or with ``_2``, ``_3``, ... appended when a run started in the same
    second already has it. ``mkdir`` either creates the folder or fails, so two processes
    starting at once never share one.

    Raises:
        PermissionError: ``model_dir`` cannot be written (one line naming it).
    """
    base = new_run_dir(model_dir, name, now)
    base.parent.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        candidate = base if k == 1 else base.with_name(f"{base.name}_{k}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            k += 1


class RunFolderLocked(RuntimeError):
    """Another live process is training into this run folder."""


class RunLock:
    """An exclusive lock on a run folder, held while a process trains into it.

    ``acquire`` raises :class:`RunFolderLocked` (naming the other process) when another live
    process holds it. The lock is ``flock`` on ``<run>/.lock``: the operating system releases
    it when the holder exits or is killed, so a lock file left by a dead process is ignored.
    Where ``fcntl`` does not exist (Windows) the lock is a no-op.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self._stream = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        stream = open(self.run_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            holder = stream.read().strip() or "another process"
            stream.close()
            raise RunFolderLocked(
                f"run folder {self.run_dir} is in use by {holder}, which is still training "
                "into it; wait for it to finish, or start a separate run (--weights with a "
                "checkpoint file and --new-run)"
            ) from None
        stream.seek(0)
        stream.truncate()
        stream.write(f"pid {os.getpid()}")
        stream.flush()
        self._stream = stream
        return self

    def release(self) -> None:
        if self._stream is not None:
            self._stream.close()  # closing the file drops the flock
            self._stream = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def is_locked(run_dir: str | os.PathLike) -> bool:
    """Whether a live process holds the lock of ``run_dir`` right now."""
    try:
        with RunLock(run_dir):
            return False
    except RunFolderLocked:
        return True


def claim_run_dir(
    resumed: Path | None, model_dir: str | os.PathLike, config, step: int
) -> tuple[Path, RunLock]:
    """The run folder a training process writes into, locked: ``resumed`` (tidied of what a
    killed run left: temporary files, metrics after ``step``) or a new one named after
    ``config.NAME``.

    Raises:
        RunFolderLocked: another live process trains into ``resumed``.
    """
    run_dir = resumed if resumed is not None else create_run_dir(model_dir, config.NAME)
    lock = RunLock(run_dir).acquire()
    if resumed is not None:
        remove_stale_temporaries(run_dir)
        trim_metrics(run_dir / METRICS_FILE, int(step))
    return run_dir, lock


def remove_stale_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer left in a run folder this process has locked
    (they are never anyone's data: :func:`atomic_torch_save` renames finished files)."""
    removed = []
    for path in Path(run_dir).iterdir():
        if _TEMPORARY.match(path.name) and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def trim_metrics(metrics_file: str | os.PathLike, last_step: int) -> int:
    """Drop the records after ``last_step`` (written by a run killed before its next
    checkpoint, which a resumed run writes again) and any half-written last line.

    Rewrites the file atomically; returns how many lines were dropped.
    """
    path = Path(metrics_file)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if isinstance(record, dict) and int(record.get("step", 0)) > last_step:
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        write_output(path, "".join(line + "\n" for line in kept))
    return dropped


class ArchitectureMismatch(ValueError):
    """Resuming a run with a config whose network differs from the checkpoint's."""


def check_same_architecture(saved: dict | None, config, checkpoint: str) -> None:
    """Refuse to resume ``checkpoint`` (whose config is ``saved``) with a different network.

    Raises:
        ArchitectureMismatch: naming each differing key with both values.
    """
    if not saved:
        return
    differing = []
    for key in ARCHITECTURE_KEYS:
        if key in saved and _plain(getattr(config, key, None)) != saved[key]:
            differing.append(f"{key}={_plain(getattr(config, key))!r} (checkpoint: {saved[key]!r})")
    if differing:
        raise ArchitectureMismatch(
            f"cannot resume {checkpoint}: the config's network differs from the checkpoint's: "
            f"{'; '.join(differing)}. Resume with the checkpoint's values, or start a new run "
            "from these weights (CLI: --new-run; Python: model.start_new_run() after "
            "load_weights)"
        )


def run_dir_of(checkpoint: str | os.PathLike) -> Path | None:
    """The run folder holding ``checkpoint`` when it is named like this project's checkpoints
    inside a run folder, else None."""
    path = Path(checkpoint)
    if _CHECKPOINT.match(path.name) and _RUN_DIR.match(path.parent.name):
        return path.parent
    return None


def checkpoint_path(run_dir: str | os.PathLike, name: str | None, epoch: int) -> Path:
    """``<run_dir>/mrcnn_<name>_<epoch:04d>.pt``."""
    return Path(run_dir) / checkpoint_name((name or "mrcnn").lower(), epoch)
