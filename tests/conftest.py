"""Suite-wide fixtures."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from mrcnn.cli import main
from tests.helpers.exported import MATTERPORT_FLAVOUR, MATTERPORT_STYLE, save_checkpoint
from tests.helpers.run_shared import RUN_DIR_VARIABLE, made_once_per_run, run_folder


class ModuleTemp:
    """New folders under one test module's temporary folder (like ``tmp_path_factory.mktemp``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[str, int] = {}

    def mktemp(self, name: str) -> Path:
        number = self.made.get(name, 0)
        self.made[name] = number + 1
        path = self.root / f"{name}{number}"
        path.mkdir()
        return path


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[ModuleTemp]:
    """Folders for the files one test module shares (full-size checkpoints run to hundreds of
    MB), removed when the module's tests end. ``tmp_path_factory`` keeps its folders until the
    session ends, and together they came to 7 GB, more than a CI machine's disk may hold."""
    root = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield ModuleTemp(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _run_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Name the folder this run's processes share (tests/helpers/run_shared.py)."""
    os.environ[RUN_DIR_VARIABLE] = str(run_folder(tmp_path_factory))


def _exported(folder: Path, name: str, **checkpoint_options) -> None:
    checkpoint = save_checkpoint(folder / f"{name}.pt", **checkpoint_options)
    assert main(["export", "--weights", str(checkpoint), str(folder / f"{name}.onnx")]) == 0


@pytest.fixture(scope="session")
def matterport_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, exported .onnx) of a Matterport-style tiny model, exported by the CLI once
    for the run (an export takes some 20 seconds)."""
    pytest.importorskip("onnxscript", reason="onnxscript is a test extra: pip install -e .[test]")
    folder = made_once_per_run(
        "onnx_matterport", lambda f: _exported(f, "tiny", **MATTERPORT_STYLE)
    )
    return folder / "tiny.pt", folder / "tiny.onnx"


@pytest.fixture(scope="session")
def matterport_flavour_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, exported .onnx) of a tiny model in Matterport's network flavour (what .h5
    models run in; ResNet-50), exported by the CLI once for the run (about 30 seconds)."""
    pytest.importorskip("onnxscript", reason="onnxscript is a test extra: pip install -e .[test]")

    def make(folder: Path) -> None:
        _exported(folder, "mp", background_shift=-4.0, **MATTERPORT_FLAVOUR)

    folder = made_once_per_run("onnx_matterport_flavour", make)
    return folder / "mp.pt", folder / "mp.onnx"


@pytest.fixture
def ctrl_c_handler() -> Iterator[None]:
    """Python's own Ctrl-C handler (KeyboardInterrupt) for tests that send SIGINT. A process
    started in the background by a shell without job control (as a CI runner may start the
    suite) inherits SIGINT ignored, and Python then installs no handler for it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
