"""``mrcnn detect`` and ``mrcnn splash`` over a folder in shards: under torchrun (2 processes on
this machine), with ``--shard I/N``, and rerun after a killed shard (issue 34)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrcnn.cli import main
from tests.helpers.tiny_model import save_tiny_checkpoint

#: One thread everywhere: torch's CPU kernels sum in another order with another thread count,
#: which moves the last digits of a box (34.998 against 35.000), so the same bytes need the
#: same count in every process.
ONE_THREAD = ["--set", "CPU_THREADS=1"]
GOOD = 4


@pytest.fixture(scope="module", autouse=True)
def keep_thread_count():
    """CPU_THREADS=1 sets torch's count for this whole process: put it back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folder(module_tmp) -> Path:
    """4 small photos and one file that is not an image (a skipped input)."""
    root = module_tmp.mktemp("in")
    rng = np.random.default_rng(0)
    for i in range(GOOD):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(root / f"p{i}.png")
    (root / "broken.jpg").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def weights(module_tmp) -> Path:
    return save_tiny_checkpoint(module_tmp.mktemp("w") / "tiny.pt", DETECTION_MAX_INSTANCES=2)


def _detect(weights: Path, folder: Path, out: Path, *more: str) -> int:
    argv = ["detect", "--weights", str(weights), "--input", str(folder), "--output", str(out)]
    return main([*argv, *ONE_THREAD, *more])


@pytest.fixture(scope="module")
def reference(weights, folder, module_tmp) -> bytes:
    """detections.json of one process."""
    out = module_tmp.mktemp("one")
    assert _detect(weights, folder, out, "--overwrite") == 1  # broken.jpg is skipped
    return (out / "detections.json").read_bytes()


def _part(out: Path, index: int, count: int = 2) -> dict:
    return json.loads((out / ".shards" / f"detections.{index}-of-{count}.json").read_text())


def test_torchrun_with_two_processes_writes_what_one_process_writes(
    weights, folder, reference, tmp_path
):
    out = tmp_path / "out"
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("-m", "mrcnn", "detect", "--weights", str(weights), "--input", str(folder)),
        *("--output", str(out), *ONE_THREAD),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said  # the merge saw broken.jpg skipped
    assert "merged 2 shards: 4 images" in said and "skipped 1 of 5 files" in said, said
    assert (out / "detections.json").read_bytes() == reference
    # round robin over the sorted names: broken.jpg, p0..p3 are inputs 0..4
    assert [r["index"] for r in _part(out, 0)["records"]] == [0, 2, 4]
    assert [r["index"] for r in _part(out, 1)["records"]] == [1, 3]
    assert "error" in _part(out, 0)["records"][0]
    figures = sorted(p.name for p in out.glob("*.png"))
    assert figures == [f"p{i}.png" for i in range(GOOD)]


def test_a_killed_shard_is_redone_and_the_finished_one_skipped(
    weights, folder, reference, tmp_path, capsys
):
    out = tmp_path / "out"
    assert _detect(weights, folder, out, "--shard", "1/2") == 0
    said = capsys.readouterr().out
    assert "waiting for shard 0" in said and not (out / "detections.json").exists()
    assert _detect(weights, folder, out, "--shard", "0/2") == 1  # merges; broken.jpg skipped
    captured = capsys.readouterr()
    assert "merged 2 shards" in captured.out and "broken.jpg" in captured.err
    assert (out / "detections.json").read_bytes() == reference

    # shard 1 "killed": its part never written, p2's figure not yet (p0's outputs are whole)
    (out / ".shards" / "detections.1-of-2.json").unlink()
    (out / "p2.png").unlink()
    (out / "detections.json").unlink()
    assert _detect(weights, folder, out, "--shard", "0/2") == 0
    said = capsys.readouterr().out
    assert "finished earlier" in said and "instances" not in said
    assert _detect(weights, folder, out, "--shard", "1/2") == 1
    said = capsys.readouterr().out
    detected = [line for line in said.splitlines() if line.endswith(" instances")]
    assert [line.split()[2] for line in detected] == ["p2.png:"], said
    assert "kept 1 a killed run had written" in said
    assert (out / "detections.json").read_bytes() == reference


def test_another_run_in_the_output_folder_is_refused(weights, folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert _detect(weights, folder, out, "--shard", "1/2") == 0
    capsys.readouterr()
    assert _detect(weights, folder, out, "--shard", "0/3") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another detections run (other N)" in err
    assert "--overwrite" in err


@pytest.mark.parametrize(
    ("shard", "says"),
    [
        ("2/2", "must be below N (0 to 1)"),
        ("1/0", "N is the number of shards"),
        ("a/b", "give I/N"),
        ("1/2x", "give I/N"),
    ],
)
def test_bad_shard_values_are_one_line(shard, says, weights, folder, tmp_path, capsys):
    assert _detect(weights, folder, tmp_path / "o", "--shard", shard) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_shard_under_torchrun_and_video_shards_are_refused(
    weights, folder, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert _detect(weights, folder, tmp_path / "o", "--shard", "0/2") == 1
    assert "torchrun assigns the shards" in capsys.readouterr().err
    argv = ["detect", "--weights", str(weights), "--video", "clip.mp4", "--output", "o"]
    assert main(argv) == 1
    assert "--video runs in one process" in capsys.readouterr().err


def test_splash_shards_write_every_image_once(weights, folder, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["splash", "--weights", str(weights), "--input-dir", str(folder), "--output", str(out)]
    assert main([*argv, *ONE_THREAD, "--shard", "0/2"]) == 0
    assert main([*argv, *ONE_THREAD, "--shard", "1/2"]) == 1  # all done: broken.jpg failed
    said = capsys.readouterr().out
    assert "all 2 shards done: splashed 4 of 5 files" in said
    written = sorted(p.name for p in out.iterdir() if p.is_file())
    assert written == [f"p{i}_splash.png" for i in range(GOOD)]
    assert said.count("wrote ") == GOOD

    # a killed shard 0 (inputs 0, 2, 4: broken.jpg, p1, p3) left p1 done and p3 not
    (out / ".shards" / "splash.0-of-2.json").unlink()
    (out / "p3_splash.png").unlink()
    assert main([*argv, *ONE_THREAD, "--shard", "1/2"]) == 0  # shard 0 missing: no summary
    assert "finished earlier" in capsys.readouterr().out
    assert main([*argv, *ONE_THREAD, "--shard", "0/2"]) == 1
    said = capsys.readouterr().out
    assert [line for line in said.splitlines() if "wrote " in line] == [
        f"[shard 0/2] wrote {out / 'p3_splash.png'}"
    ]
    assert "kept 1 a killed run had written" in said
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == written
