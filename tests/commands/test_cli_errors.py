"""Issue 12: inputs a user can get wrong give one line naming the problem and what to do, a
non-zero exit, and no traceback: unwritable folders, files given for folders and back, huge
images, and files that are not weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrcnn.cli import main
from tests.helpers.tiny_model import save_tiny_checkpoint


@pytest.fixture(scope="module")
def weights(module_tmp) -> Path:
    return save_tiny_checkpoint(module_tmp.mktemp("w") / "tiny.pt")


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture
def read_only(tmp_path, monkeypatch) -> Path:
    """A folder that cannot be written. Root ignores permission bits, so there os.access is
    made to answer as it would for anyone else."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access

        def access(path, mode, *args, **kwargs):
            if Path(path) == folder and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    yield folder
    folder.chmod(0o755)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("mrcnn "), err
    assert not any("Traceback" in line for line in err)
    return err[-1]


def _refuses_before_loading(monkeypatch):
    """Make any model construction fail loudly: the checks must come first."""
    from mrcnn import model as model_module

    def boom(*args, **kwargs):
        raise AssertionError("the model was built before the output was checked")

    monkeypatch.setattr(model_module.MaskRCNN, "__init__", boom)


# ------------------------------------------------------------------ folders
def test_train_read_only_logs(read_only, monkeypatch, capsys):
    _refuses_before_loading(monkeypatch)
    argv = ["train", "--dataset", "shapes:4:64", "--weights", "none"]
    assert main([*argv, "--logs", str(read_only / "logs")]) == 1
    line = _one_line(capsys)
    assert "--logs" in line and "not writable" in line and str(read_only) in line


def test_detect_read_only_output(read_only, photos, weights, monkeypatch, capsys):
    _refuses_before_loading(monkeypatch)
    argv = ["detect", "--weights", str(weights), "--input", str(photos)]
    assert main([*argv, "--output", str(read_only)]) == 1
    assert "--output" in _one_line(capsys)


def test_splash_read_only_output(read_only, photos, weights, monkeypatch, capsys):
    _refuses_before_loading(monkeypatch)
    argv = ["splash", "--weights", str(weights), "--image", str(photos / "a.png")]
    assert main([*argv, "--output", str(read_only / "x.png")]) == 1
    assert "not writable" in _one_line(capsys)


def test_inspect_data_read_only_out(read_only, capsys):
    argv = ["inspect-data", "--dataset", "shapes:4:64", "--out", str(read_only)]
    assert main(argv) == 1
    assert "--out" in _one_line(capsys)


def test_splash_output_dir_that_is_a_file(photos, weights, tmp_path, monkeypatch, capsys):
    _refuses_before_loading(monkeypatch)
    existing = tmp_path / "notes.txt"
    existing.write_text("keep")
    argv = ["splash", "--weights", str(weights), "--input-dir", str(photos)]
    assert main([*argv, "--output", str(existing)]) == 1
    assert "is an existing file" in _one_line(capsys) and existing.read_text() == "keep"


def test_splash_image_given_a_folder(photos, weights, capsys):
    assert main(["splash", "--weights", str(weights), "--image", str(photos)]) == 1
    assert f"--image {photos} is a folder; use --input-dir {photos}" in _one_line(capsys)


# ------------------------------------------------------------------ huge images
def test_decompression_bomb_is_one_line_per_image_and_the_rest_go_on(
    photos, weights, tmp_path, monkeypatch, capsys
):
    big = np.zeros((80, 80, 3), dtype=np.uint8)
    Image.fromarray(big).save(photos / "c_huge.png")
    # PIL refuses images over twice MAX_IMAGE_PIXELS; shrink the limit instead of the disk.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 40 x 60 passes, 80 x 80 does not
    out = tmp_path / "out"
    argv = ["detect", "--weights", str(weights), "--input", str(photos)]
    assert main([*argv, "--output", str(out)]) == 1
    captured = capsys.readouterr()
    bomb = [line for line in captured.err.splitlines() if "c_huge.png" in line]
    assert len(bomb) == 1 and "megapixels" in bomb[0] and "downscale" in bomb[0]
    assert "Traceback" not in captured.err
    assert (out / "a.png").is_file() and (out / "b.png").is_file()
    assert "skipped 1 of 3 files" in captured.out
    assert main(["splash", "--weights", str(weights), "--image", str(photos / "c_huge.png")]) == 1
    assert "megapixels" in _one_line(capsys)


# ------------------------------------------------------------------ weights files
def test_text_file_as_weights(photos, tmp_path, capsys):
    text = tmp_path / "weights.pt"
    text.write_text("see https://example.org/model for the weights\n")
    argv = ["detect", "--weights", str(text), "--input", str(photos)]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 1
    line = _one_line(capsys)
    assert (
        "is a text file (it starts with 'see https://example.org" in line and "KeyError" not in line
    )


def test_pickled_full_model_as_weights(photos, tmp_path, capsys):
    pickled = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    argv = ["detect", "--weights", str(pickled), "--input", str(photos)]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 1
    line = _one_line(capsys)
    assert "pickled Python object (torch.nn.modules.linear.Linear)" in line
    assert "torch.save(model.state_dict(), path)" in line and "weights_only" not in line


def test_unwritable_output_error_from_the_os_is_one_line(monkeypatch, capsys):
    from mrcnn.commands import inspect_data

    def denied(args):
        raise PermissionError(13, "Permission denied", "/some/where.png")

    monkeypatch.setattr(inspect_data, "run", denied)
    assert main(["inspect-data", "--dataset", "shapes"]) == 1
    assert _one_line(capsys).endswith("error: Permission denied: /some/where.png")


def test_splash_folder_counts_what_it_skipped(photos, weights, tmp_path, capsys):
    (photos / "zz_broken.png").write_bytes(b"not a png")
    argv = ["splash", "--weights", str(weights), "--input-dir", str(photos)]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "splashed 2 of 3 files; 1 skipped" in captured.out
    assert "skipped " in captured.err and "zz_broken.png" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_splash.png", "b_splash.png"]


def test_detect_refuses_backbone_only_weights(photos, tmp_path, capsys):
    import torchvision

    backbone = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), backbone)
    out = tmp_path / "out"
    argv = ["detect", "--weights", str(backbone), "--input", str(photos), "--output", str(out)]
    assert main([*argv, "--set", "BACKBONE=resnet18"]) == 1
    line = _one_line(capsys)
    assert "uninitialised" in line and "box_head" in line and "train first" in line
    assert not out.exists() or not any(out.iterdir())
