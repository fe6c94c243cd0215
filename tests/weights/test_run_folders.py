"""Run folders (issue 12): one per run, locked while in use, tidied and checked on resume."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
import torch

from mrcnn.cli import main
from mrcnn.model import MaskRCNN
from mrcnn.weights import checkpoint as ckpt
from tests.helpers.training import config, shapes

NOW = datetime.datetime(2026, 11, 26, 10, 30, 5)


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    made: list = []
    threads = [
        threading.Thread(target=lambda: made.append(ckpt.create_run_dir(tmp_path, "x", NOW)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = sorted(p.name for p in made)
    assert len(set(names)) == 8 and names[0] == "x20261126T103005"
    assert "x20261126T103005_8" in names
    # every name keeps the <name>YYYYmmddTHHMM prefix, and find_last takes the newest
    for k, run in enumerate(sorted(made, key=lambda p: int(p.name.partition("_")[2] or 1))):
        ckpt.atomic_torch_save({}, ckpt.checkpoint_path(run, "x", 1 + k % 2))
    older = tmp_path / "x20261126T1029"  # an old, minute-resolution folder
    ckpt.atomic_torch_save({}, ckpt.checkpoint_path(older, "x", 9))
    assert ckpt.find_last(tmp_path, "x").parent.name == "x20261126T103005_8"


def test_checkpoints_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = ckpt.atomic_torch_save({"a": 1}, tmp_path / "mrcnn_x_0001.pt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


_HOLDER = textwrap.dedent(
    """
    import fcntl, sys, time
    stream = open(sys.argv[1], "a+")
    fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
    stream.seek(0); stream.truncate(); stream.write("pid 4242"); stream.flush()
    print("locked", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def locked_run(tmp_path):
    """A run folder with one checkpoint whose lock another live process holds."""
    run = tmp_path / "logs" / "tiny20261126T103005"
    ckpt.atomic_torch_save({}, ckpt.checkpoint_path(run, "tiny", 1))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run / ckpt.LOCK_FILE)], stdout=subprocess.PIPE
    )
    assert holder.stdout.readline().strip() == b"locked"
    yield run, holder
    holder.kill()
    holder.wait()


def test_lock_held_by_a_live_process_refuses_and_a_dead_ones_is_ignored(locked_run):
    run, holder = locked_run
    assert ckpt.is_locked(run)
    with pytest.raises(ckpt.RunFolderLocked, match="in use by pid 4242.*--new-run"):
        ckpt.RunLock(run).acquire()
    holder.kill()  # SIGKILL: the lock file stays, the lock goes
    holder.wait()
    assert (run / ckpt.LOCK_FILE).exists() and not ckpt.is_locked(run)


def test_cli_resume_into_a_run_in_use_is_refused(locked_run, capsys):
    run, _ = locked_run
    before = sorted(p.name for p in run.iterdir())
    argv = ["train", "--dataset", "shapes:4:64", "--weights", "last", "--logs", str(run.parent)]
    assert main([*argv, "--set", "NAME=tiny"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is in use by pid 4242" in err
    assert sorted(p.name for p in run.iterdir()) == before


def test_resume_tidies_what_a_killed_run_left(tmp_path):
    cfg = config(VALIDATION_STEPS=0, STEPS_PER_EPOCH=2)
    first = MaskRCNN("training", cfg, tmp_path)
    first.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    run = first.log_dir
    # What SIGKILL during epoch 2 leaves: its steps logged, half a line, a temporary file.
    with open(run / "metrics.jsonl", "a") as stream:
        stream.write(json.dumps({"step": 3, "epoch": 2, "loss": 1.0}) + "\n" + '{"step": 4, "ep')
    (run / ".mrcnn_tiny_0002.pt.abc123.tmp").write_bytes(b"half")

    second = MaskRCNN("training", cfg, tmp_path)
    second.load_weights("last")
    second.train(shapes(2), None, 0.01, epochs=2, layers="heads")
    assert second.log_dir == run
    lines = (run / "metrics.jsonl").read_text().split("\n")
    assert lines[-1] == ""  # the file ends with a whole line
    steps = [json.loads(line)["step"] for line in lines[:-1]]
    assert steps == [1, 2, 3, 4]  # continued, no step twice
    assert not list(run.glob(".*.tmp"))
    assert sorted(p.name for p in run.glob("*.pt")) == ["mrcnn_tiny_0001.pt", "mrcnn_tiny_0002.pt"]


def test_resume_with_another_architecture_is_refused(tmp_path):
    cfg = config(BACKBONE="resnet18", VALIDATION_STEPS=0, STEPS_PER_EPOCH=1)
    first = MaskRCNN("training", cfg, tmp_path)
    first.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    run = first.log_dir
    saved = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    other = MaskRCNN("training", config(BACKBONE="resnet34", VALIDATION_STEPS=0), tmp_path)
    other.load_weights("last")  # partial (training may start so), but it cannot resume
    expected = r"BACKBONE='resnet34' \(checkpoint: 'resnet18'\).*--new-run"
    with pytest.raises(ckpt.ArchitectureMismatch, match=expected):
        other.train(shapes(2), None, 0.01, epochs=2, layers="heads")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == saved

    other.start_new_run()  # what --new-run does: a fresh folder from these weights
    other.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    assert other.log_dir != run and (other.log_dir / "mrcnn_tiny_0001.pt").is_file()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == saved


def test_cli_resume_with_another_backbone_is_one_line(tmp_path, capsys):
    cfg = config(BACKBONE="resnet18", VALIDATION_STEPS=0, STEPS_PER_EPOCH=1)
    MaskRCNN("training", cfg, tmp_path).train(shapes(2), None, 0.01, epochs=1, layers="heads")
    capsys.readouterr()
    argv = ["train", "--dataset", "shapes:4:64", "--weights", "last", "--logs", str(tmp_path)]
    argv += ["--config", "tests.helpers.training:TinyConfig", "--set", "BACKBONE=resnet34"]
    assert main([*argv, "--set", "POOL_SIZE=5", "--epochs", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--new-run" in err
    assert "BACKBONE='resnet34' (checkpoint: 'resnet18'); POOL_SIZE=5 (checkpoint: 7)" in err
    assert len(list(tmp_path.glob("*/*.pt"))) == 1


def test_torch_load_of_a_checkpoint_after_resume(tmp_path):
    """The checkpoints a resumed run writes load with weights_only (sanity of the payload)."""
    model = MaskRCNN("training", config(VALIDATION_STEPS=0, STEPS_PER_EPOCH=1), tmp_path)
    model.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    assert torch.load(model.find_last(), weights_only=True)["epoch"] == 1


def test_library_resume_into_a_run_in_use_is_refused(tmp_path):
    cfg = config(VALIDATION_STEPS=0, STEPS_PER_EPOCH=1)
    first = MaskRCNN("training", cfg, tmp_path)
    first.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    run = first.log_dir
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run / ckpt.LOCK_FILE)], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"locked"
        second = MaskRCNN("training", cfg, tmp_path)
        second.load_weights("last")
        with pytest.raises(ckpt.RunFolderLocked, match="in use by pid 4242"):
            second.train(shapes(2), None, 0.01, epochs=2, layers="heads")
        assert sorted(p.name for p in run.glob("*.pt")) == ["mrcnn_tiny_0001.pt"]
    finally:
        holder.kill()
        holder.wait()
