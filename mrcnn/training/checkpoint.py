"""Checkpoints: atomic writing, run folders and finding the newest one.

A run folder is ``<model_dir>/<name>YYYYmmddTHHMM/`` and holds ``mrcnn_<name>_<epoch:04d>.pt``
files. A checkpoint is a dict ``{"format": "mrcnn", "version": 1, "model": state_dict,
"config": {...}, "epoch": int, ...}`` readable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_VERSION = 1
_RUN_DIR = re.compile(r"^(?P<name>.+)(?P<stamp>\d{8}T\d{4})$")
_CHECKPOINT = re.compile(r"^mrcnn_(?P<name>.+)_(?P<epoch>\d{4,})\.pt$")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` with torch.save to a temporary file beside ``path``, then rename it.

    A crash mid-write leaves the previous file (if any) intact and no partial file at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
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
    """The newest checkpoint of the newest run folder under ``model_dir``.

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
                runs.append((match["stamp"], entry.name, entry))
    for _, _, run in sorted(runs, reverse=True):
        checkpoints = sorted(
            (int(m["epoch"]), p) for p in run.iterdir() if (m := _CHECKPOINT.match(p.name))
        )
        if checkpoints:
            return checkpoints[-1][1]
    which = f" for NAME={name!r}" if name else ""
    raise FileNotFoundError(
        f"no checkpoint{which} under {model_dir.resolve()}: train first, or pass a weights file"
    )


def new_run_dir(model_dir: str | os.PathLike, name: str | None, now=None) -> Path:
    """``<model_dir>/<name>YYYYmmddTHHMM`` for a new training run (not created here).

    Args:
        name: the config NAME (lower-cased; "mrcnn" when None).
        now: a datetime (default: the current local time).
    """
    import datetime

    now = now or datetime.datetime.now()
    return Path(model_dir) / f"{(name or 'mrcnn').lower()}{now:%Y%m%dT%H%M}"


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
