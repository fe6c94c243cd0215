"""Checkpoint files: atomic writing, run folder helpers, find_last."""

from __future__ import annotations

import datetime

import pytest
import torch

from mrcnn.weights import checkpoint as ckpt


def test_crash_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "run" / "mrcnn_x_0001.pt"
    ckpt.atomic_torch_save({"epoch": 1, "w": torch.ones(3)}, path)
    good = path.read_bytes()

    def crash(obj, stream):
        stream.write(b"half a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_torch_save({"epoch": 2}, path)
    assert path.read_bytes() == good
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_run_folder_names_and_find_last(tmp_path):
    run = ckpt.new_run_dir(tmp_path, "Shapes", datetime.datetime(2024, 5, 6, 7, 8))
    assert run.name == "shapes20240506T070800"
    for epoch in (1, 2, 10):
        ckpt.atomic_torch_save({}, ckpt.checkpoint_path(run, "shapes", epoch))
    last = ckpt.find_last(tmp_path, "shapes")
    assert last.name == "mrcnn_shapes_0010.pt"
    assert ckpt.run_dir_of(last) == run
    assert ckpt.run_dir_of(tmp_path / "weights.pt") is None
    with pytest.raises(FileNotFoundError, match="no checkpoint for NAME='other'"):
        ckpt.find_last(tmp_path, "other")


def test_find_last_finds_matterports_h5_checkpoints(tmp_path):
    """A logs folder from Matterport's training (``balloon20180405T1234/mask_rcnn_balloon_0030.h5``,
    as its ModelCheckpoint named them) is found by find_last, as Matterport's own did; the
    newer run folder still wins over it, and other .h5 files are not checkpoints."""
    old = tmp_path / "balloon20180405T1234"
    old.mkdir()
    for epoch in (9, 30):
        (old / f"mask_rcnn_balloon_{epoch:04d}.h5").write_bytes(b"")
    (old / "events.out.tfevents.1.host").write_bytes(b"")
    assert ckpt.find_last(tmp_path, "balloon").name == "mask_rcnn_balloon_0030.h5"
    (tmp_path / "balloon20180406T0000").mkdir()
    (tmp_path / "balloon20180406T0000" / "weights.h5").write_bytes(b"")
    assert ckpt.find_last(tmp_path, "balloon").name == "mask_rcnn_balloon_0030.h5"
    new = ckpt.new_run_dir(tmp_path, "balloon", datetime.datetime(2026, 1, 2, 3, 4))
    ckpt.atomic_torch_save({}, ckpt.checkpoint_path(new, "balloon", 1))
    assert ckpt.find_last(tmp_path, "balloon").name == "mrcnn_balloon_0001.pt"
