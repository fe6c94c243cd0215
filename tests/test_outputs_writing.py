"""Issue 31, the write-safety classes: mrcnn.outputs.atomic_output (the one helper every output
goes through) and the commands that use it.

1 never over an input (by path and by inode: hard and symbolic links count), with or without
--overwrite; 4 atomic; 5 stale temporaries of a killed writer removed on the next write; 6 the
umask's mode; 7 a full disk in one line naming the path and the cause.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mrcnn import outputs
from mrcnn.cli import main
from mrcnn.outputs import (
    TEMPORARY_TAG,
    OutputError,
    OutputWriteError,
    atomic_output,
    protect_inputs,
    remove_stale_temporaries,
    write_failure,
    write_output,
)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def forget():
    yield
    outputs.forget_inputs()


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


def dev_full_temporaries(monkeypatch) -> None:
    """Make the helper's temporaries links to /dev/full, where every write fails ENOSPC."""

    def full(path, label=""):
        path = Path(path)
        link = path.with_name(f".{path.stem}{TEMPORARY_TAG}{os.getpid()}{path.suffix}")
        os.symlink("/dev/full", link)
        return link

    monkeypatch.setattr(outputs, "temporary_beside", full)


# ------------------------------------------------------------------------------------------------
# Rule 1: never over an input
# ------------------------------------------------------------------------------------------------
def test_convert_onto_its_own_input_is_refused_even_with_overwrite(tmp_path, capsys):
    """The example: `convert in.safetensors in.safetensors --overwrite` destroyed the model."""
    model = tmp_path / "in.safetensors"
    model.write_bytes(b"\x89HDF\r\n\x1a\n the model")
    assert main(["convert", str(model), str(model), "--overwrite"]) == 1
    assert "over input files" in _error_line(capsys)
    assert model.read_bytes() == b"\x89HDF\r\n\x1a\n the model"


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_convert_onto_a_link_to_its_input_is_refused(tmp_path, capsys, link):
    model = tmp_path / "mp.h5"
    model.write_bytes(b"the model")
    out = tmp_path / "out.safetensors"
    (os.link if link == "hard" else os.symlink)(model, out)
    assert main(["convert", str(model), str(out), "--overwrite"]) == 1
    assert "over input files" in _error_line(capsys)
    assert model.read_bytes() == b"the model"


def test_export_onto_its_weights_is_refused_before_loading(tmp_path, capsys):
    weights = tmp_path / "model.pt2"
    weights.write_bytes(b"the weights")
    link = tmp_path / "out.pt2"
    os.link(weights, link)
    for out in (weights, link):
        assert main(["export", str(out), "--weights", str(weights), "--overwrite"]) == 1
        assert "over input files" in _error_line(capsys)
    assert weights.read_bytes() == b"the weights"


def test_detect_never_writes_its_summary_over_the_weights(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"the weights")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(weights, out / "detections.json")
    argv = ["detect", "--weights", str(weights), "--input", str(tmp_path / "a.png")]
    assert main([*argv, "--output", str(out), "--overwrite"]) == 1
    assert "over input files" in _error_line(capsys)
    assert weights.read_bytes() == b"the weights"


def test_splash_onto_its_image_is_refused_before_the_model(tmp_path, capsys):
    from PIL import Image

    photo = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(photo)
    before = photo.read_bytes()
    link = tmp_path / "b.png"
    os.symlink(photo, link)
    for out in (photo, link):
        argv = ["splash", "--image", str(photo), "--output", str(out), "--weights", "x.pt"]
        assert main([*argv, "--overwrite"]) == 1
        assert "is an input of this run" in _error_line(capsys)
    assert photo.read_bytes() == before


def test_evaluate_never_writes_over_the_weights_through_a_hard_link(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"the weights")
    out = tmp_path / "results.json"
    os.link(weights, out)
    argv = ["evaluate", "--dataset", "shapes", "--weights", str(weights), "--output", str(out)]
    assert main([*argv, "--overwrite"]) == 1
    assert "over input files" in _error_line(capsys)
    assert weights.read_bytes() == b"the weights"


def test_the_helper_refuses_an_input_by_inode_and_a_registered_one(tmp_path, forget):
    source = tmp_path / "in.bin"
    source.write_bytes(b"input")
    other_name = tmp_path / "other.bin"
    os.link(source, other_name)
    with pytest.raises(OutputError, match="is an input of this run"):
        write_output(other_name, b"x", inputs=[source])
    protect_inputs([source])  # as check_new_outputs does for a command's inputs
    with pytest.raises(OutputError, match="is an input of this run"):
        write_output(other_name, b"x")
    assert source.read_bytes() == b"input"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bin", "other.bin"]


# ------------------------------------------------------------------------------------------------
# Rules 4 and 6: atomic, the umask's mode
# ------------------------------------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_output(path) as temporary:
        temporary.write_text("half")
        assert temporary.name.startswith(f".out{TEMPORARY_TAG}{os.getpid()}")
        assert temporary.suffix == ".json"  # libraries choosing a format by extension still do
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_outputs_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    old = tmp_path / "old.json"
    old.write_text("x")
    old.chmod(0o600)
    for path in (tmp_path / "new.json", old):
        write_output(path, "{}")
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_checkpoints_follow_the_umask_through_the_helper(tmp_path, umask):
    from mrcnn.weights.checkpoint import atomic_torch_save

    umask(0o027)
    assert atomic_torch_save({"a": 1}, tmp_path / "c.pt").stat().st_mode & 0o777 == 0o640


def test_detect_outputs_follow_the_umask(tmp_path, umask):
    from PIL import Image

    from tests.helpers.tiny_model import save_tiny_checkpoint

    weights = save_tiny_checkpoint(tmp_path / "w.pt")
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    umask(0o077)
    out = tmp_path / "out"
    argv = ["detect", "--weights", str(weights), "--input", str(tmp_path / "a.png")]
    assert main([*argv, "--output", str(out)]) == 0
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes == {"a.json": 0o600, "a.png": 0o600, "detections.json": 0o600}


# ------------------------------------------------------------------------------------------------
# Rule 7: a full disk in one line
# ------------------------------------------------------------------------------------------------
def test_a_full_disk_is_one_line_naming_the_path(tmp_path, monkeypatch):
    dev_full_temporaries(monkeypatch)
    path = tmp_path / "out.json"
    with pytest.raises(OutputWriteError) as raised:
        write_output(path, "{}" * 10000)
    assert str(raised.value) == (
        f"cannot write {path}: no space left on device; free some space or write elsewhere"
    )
    assert list(tmp_path.iterdir()) == []


def test_torch_save_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import torch

    from mrcnn.weights.checkpoint import atomic_torch_save

    dev_full_temporaries(monkeypatch)
    with pytest.raises(OutputWriteError, match=r"c\.pt: no space left on device"):
        atomic_torch_save({"a": torch.zeros(5000)}, tmp_path / "c.pt")
    assert list(tmp_path.iterdir()) == []


def test_convert_on_a_full_disk_is_one_line_not_a_safetensors_error(tmp_path, monkeypatch, capsys):
    from safetensors import SafetensorError

    import mrcnn.weights.convert as convert

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
            'space left on device" })'
        )

    monkeypatch.setattr(convert, "save_file", full_disk)
    monkeypatch.setattr(convert, "read_matterport_h5", _tiny_matterport_state)
    out = tmp_path / "m.safetensors"
    assert main(["convert", str(tmp_path / "m.h5"), str(out)]) == 1
    assert _error_line(capsys) == (
        f"mrcnn convert: error: cannot write {out}: no space left on device; free some space "
        "or write elsewhere"
    )
    assert list(tmp_path.iterdir()) == []


def _tiny_matterport_state(path):
    """What read_matterport_h5 gives for a small backbone-only file (no class heads)."""
    from mrcnn.config import Config
    from mrcnn.modeling.network import MaskRCNNNet

    config = Config.from_overrides({"NETWORK_FLAVOUR": "matterport", "NUM_CLASSES": 2})
    state = MaskRCNNNet(config).state_dict()
    return {k: v for k, v in state.items() if k.startswith("backbone")}, {}, {}


def test_library_errors_that_wrap_a_full_disk_are_recognised(tmp_path):
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] file write failed"
            ) from inner
    except RuntimeError as error:
        assert write_failure(error).startswith("no space left on device")
    quota = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert write_failure(quota).startswith("disk quota exceeded")
    # a library that hides the errno altogether: a probe write to the temporary tells
    link = tmp_path / "t"
    os.symlink("/dev/full", link)
    assert write_failure(RuntimeError("file write failed"), link).startswith("no space left")
    assert write_failure(RuntimeError("file write failed"), tmp_path / "missing") == ""


# ------------------------------------------------------------------------------------------------
# Rule 5: temporaries named as ours; a killed writer's removed by the next write
# ------------------------------------------------------------------------------------------------
_KILLED_WRITER = """
import os, signal, sys
from mrcnn.outputs import atomic_output
with atomic_output(sys.argv[1]) as temporary:
    temporary.write_bytes(b"half an export")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    out = tmp_path / "model.onnx"
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(out)], check=False)
    assert killed.returncode == -signal.SIGKILL
    (junk,) = tmp_path.iterdir()
    assert junk.name == f".model{TEMPORARY_TAG}{junk.name.split('-')[-1]}"
    write_output(out, b"the export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_only_stale_temporaries_of_the_same_output_are_removed(tmp_path):
    out = tmp_path / "x.json"
    live = tmp_path / f".x{TEMPORARY_TAG}{os.getpid()}.json"  # this process, writing now
    reused = tmp_path / f".x{TEMPORARY_TAG}{os.getpid()}-1.json"  # older than this process
    other = tmp_path / f".y{TEMPORARY_TAG}999999999.json"  # another output's
    users = tmp_path / ".x.backup.json"  # not ours
    for path in (live, reused, other, users):
        path.write_text("")
    an_hour_before_this_process = time.time() - 10**6
    os.utime(reused, (an_hour_before_this_process, an_hour_before_this_process))
    assert remove_stale_temporaries(out) == [reused]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, other, users)
    )
