"""Suite-wide fixtures."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


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
