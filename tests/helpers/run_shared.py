"""Files made once for a whole test run and shared by pytest-xdist's worker processes (an
export or a training costs 20-40 s; each worker would otherwise repeat it).

tests/conftest.py names the run's folder in ``MRCNN_TEST_RUN_DIR`` before any test runs: the
folder pytest-xdist's workers' temporary folders sit in (or the session's own without xdist),
which pytest removes with its other old temporary folders.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

RUN_DIR_VARIABLE = "MRCNN_TEST_RUN_DIR"


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder this test run's processes share."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # xdist's workers' folders sit side by side in this run's folder
    return root


def made_once_per_run(name: str, make: Callable[[Path], None]) -> Path:
    """The folder ``name`` in the run's folder, filled by ``make(folder)`` by the first process
    to ask while the others wait on a lock; then all read it."""
    root = Path(os.environ[RUN_DIR_VARIABLE])
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder
