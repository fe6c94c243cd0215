"""Kill a tiny training run at random moments, resume it, and check nothing was lost (issue 12).

1. ``--kills`` times (default 20): start ``mrcnn train`` (``--weights last`` once a checkpoint
   exists, else ``none``), SIGKILL it after a random delay, then check that every checkpoint
   written so far loads with ``torch.load(weights_only=True)`` and holds the epoch its name says.
2. Resume once more and let it finish two more epochs; then check that the epochs of the run
   folder are 1..N without a gap, that the global steps in the checkpoints and in metrics.jsonl
   continue without repeats, that no temporary file is left, and that the lock is free.
3. Start two trainings at the same moment into one fresh ``--logs`` and check that each got its
   own run folder and kept all its checkpoints and metrics.

The model is a random ResNet-18 Mask R-CNN on 64 x 64 generated shapes, 3 steps per epoch.

    python -m tools.test_quality.fault_drill [--kills 20] [--seed 0] [--min-delay S] [--max-delay S]

Two more drills (issue 31, :mod:`tools.test_quality.output_drills`), each printing a table:

    python -m tools.test_quality.fault_drill --drill full-disk [--only detect splash ...]
    python -m tools.test_quality.fault_drill --drill kill-outputs [--kills 6] [--seed 0]

By default the kill delays span 0.4 x a resumed run's time to its first checkpoint up to that
time plus four epochs, measured by calibration runs before the drill.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIG = {
    "NAME": "drill",
    "BACKBONE": "resnet18",
    "NUM_CLASSES": 4,
    "IMAGES_PER_GPU": 1,
    "IMAGE_MIN_DIM": 64,
    "IMAGE_MAX_DIM": 64,
    "RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128],
    "RPN_TRAIN_ANCHORS_PER_IMAGE": 64,
    "PRE_NMS_LIMIT": 500,
    "POST_NMS_ROIS_TRAINING": 32,
    "POST_NMS_ROIS_INFERENCE": 32,
    "TRAIN_ROIS_PER_IMAGE": 16,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 32,
    "TOP_DOWN_PYRAMID_SIZE": 16,
    "MASK_HEAD_CHANNELS": 16,
    "MINI_MASK_SHAPE": [28, 28],
    "STEPS_PER_EPOCH": 3,
    "VALIDATION_STEPS": 1,
    "WARMUP_STEPS": 2,
    "WORKERS": 0,
    "DEVICE": "cpu",
    "CPU_THREADS": 1,
    "TRAIN_BN": True,
    "LEARNING_RATE": 0.01,
}
DATASET = "shapes:12:64"


def train_command(config: Path, logs: Path, weights: str, epochs: int) -> list[str]:
    return [
        sys.executable, "-m", "mrcnn", "train", "--dataset", DATASET, "--config", str(config),
        "--weights", weights, "--logs", str(logs), "--epochs", str(epochs), "--layers", "all",
    ]  # fmt: skip


def checkpoints(logs: Path) -> list[Path]:
    return sorted(logs.glob("*/mrcnn_*.pt"))


def check_checkpoints(paths: list[Path]) -> int:
    """Load every checkpoint; its epoch must match its name. Returns how many loaded."""
    for path in paths:
        data = torch.load(path, map_location="cpu", weights_only=True)
        epoch = int(path.stem.rsplit("_", 1)[1])
        assert data["format"] == "mrcnn" and data["epoch"] == epoch, path
    return len(paths)


def _leftovers(logs: Path) -> dict[str, int]:
    """What a kill left that a resume must tidy: temporary checkpoint files, and metrics rows
    of steps after the newest checkpoint (the resumed run repeats those steps)."""
    temporaries = len(list(logs.glob("*/.*.tmp")))
    found = checkpoints(logs)
    rows = 0
    if found:
        newest = max(found, key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        step = torch.load(newest, weights_only=True)["step"]
        for line in (newest.parent / "metrics.jsonl").read_text().splitlines():
            try:
                rows += json.loads(line).get("step", 0) > step
            except json.JSONDecodeError:
                rows += 1  # a half-written line
    return {"temporary files": temporaries, "metrics rows past the checkpoint": rows}


def check_run_folder(run: Path) -> dict:
    """Epochs contiguous, steps continuing, metrics without repeats, no temporaries."""
    from mrcnn.weights.checkpoint import is_locked

    found = sorted(run.glob("mrcnn_*.pt"))
    epochs = [int(p.stem.rsplit("_", 1)[1]) for p in found]
    assert epochs == list(range(1, len(epochs) + 1)), f"epochs {epochs}"
    steps = [torch.load(p, weights_only=True)["step"] for p in found]
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False)), f"steps {steps}"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in rows if "loss" in r and "val_loss" not in r]
    assert train_steps == list(range(1, len(train_steps) + 1)), "repeated or missing steps"
    val_epochs = [r["epoch"] for r in rows if "val_loss" in r]
    assert len(val_epochs) == len(set(val_epochs)), f"repeated validation rows {val_epochs}"
    temporaries = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert not temporaries, f"temporary files left: {temporaries}"
    assert not is_locked(run), "lock still held"
    return {"epochs": len(epochs), "steps": steps[-1] if steps else 0, "rows": len(rows)}


def drill(args, work: Path) -> None:
    rng = random.Random(args.seed)
    config = work / "drill.json"
    config.write_text(json.dumps(CONFIG))
    logs = work / "logs"
    seen: set[Path] = set(calibrate(config, logs, args))
    low, high = args.min_delay, args.max_delay
    totals = {"temporary files": 0, "metrics rows past the checkpoint": 0}
    print(f"kill delays drawn uniformly from {low:.1f}-{high:.1f} s\n")
    for index in range(args.kills):
        weights = "last" if checkpoints(logs) else "none"
        delay = rng.uniform(low, high)
        process = subprocess.Popen(
            train_command(config, logs, weights, 100_000),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        exited = process.poll()
        process.kill()
        process.wait()
        seen.update(checkpoints(logs))
        loaded = check_checkpoints(sorted(seen))
        leftovers = _leftovers(logs)
        for key, value in leftovers.items():
            totals[key] += bool(value)
        note = " (had exited by itself!)" if exited is not None else ""
        left = ", ".join(f"{v} {k}" for k, v in leftovers.items() if v) or "nothing"
        print(
            f"kill {index + 1:2}: --weights {weights:4} after {delay:5.1f} s; "
            f"{loaded} checkpoints, all load; left for the resume to tidy: {left}{note}"
        )
    last_epoch = max(int(p.stem.rsplit("_", 1)[1]) for p in seen) if seen else 0
    final = subprocess.run(
        train_command(config, logs, "last" if seen else "none", last_epoch + 2),
        capture_output=True,
        text=True,
        check=False,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    runs = sorted({p.parent for p in checkpoints(logs)})
    assert len(runs) == 1, f"checkpoints in {len(runs)} run folders: {runs}"
    empty = [p for p in logs.iterdir() if p.is_dir() and p not in runs]
    summary = check_run_folder(runs[0])
    check_checkpoints(checkpoints(logs))
    print(
        f"\nafter {args.kills} kills and a final resume: {summary['epochs']} epochs 1.."
        f"{summary['epochs']} in {runs[0].name}, every checkpoint loads, global steps continue "
        f"to {summary['steps']}, metrics.jsonl has {summary['rows']} rows without repeats, no "
        "temporary files, lock free"
    )
    print(
        f"run folders without checkpoints (kills before the first one): {len(empty)}; "
        f"checkpoints seen: {len(seen | set(checkpoints(logs)))}; kills that left "
        + ", ".join(f"{k}: {v}" for k, v in totals.items())
    )


def calibrate(config: Path, logs: Path, args) -> list[Path]:
    """Time a resumed run to its first and second new checkpoint, so that the kill delays span
    start-up, training steps and checkpoint writes; set args.min_delay/max_delay when not given.

    A fresh run is first trained to one checkpoint (and killed), then resumed and timed.
    """
    marks = _time_checkpoints(train_command(config, logs, "none", 100_000), logs, 1)
    first, second = _time_checkpoints(train_command(config, logs, "last", 100_000), logs, 2)
    epoch = second - first
    args.min_delay = args.min_delay if args.min_delay is not None else 0.4 * first
    args.max_delay = args.max_delay if args.max_delay is not None else first + 4 * epoch
    print(
        f"calibration: a fresh run's first checkpoint after {marks[0]:.1f} s; a resumed run's "
        f"first after {first:.1f} s, then one per {epoch:.1f} s"
    )
    return checkpoints(logs)


def _time_checkpoints(command: list[str], logs: Path, count: int) -> list[float]:
    """Seconds from start until each of ``count`` new checkpoints appears; then SIGKILL."""
    before, start = len(checkpoints(logs)), time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marks: list[float] = []
    while len(marks) < count and process.poll() is None:
        if len(checkpoints(logs)) - before > len(marks):
            marks.append(time.monotonic() - start)
        time.sleep(0.05)
    process.kill()
    process.wait()
    if len(marks) < count:
        raise SystemExit(f"calibration run exited with {process.returncode}: {command}")
    return marks


def concurrent(work: Path) -> None:
    config = work / "drill.json"
    logs = work / "concurrent_logs"
    processes = [
        subprocess.Popen(
            train_command(config, logs, "none", 2),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:
        _, err = process.communicate()
        assert process.returncode == 0, err[-2000:]
    runs = sorted(p for p in logs.iterdir() if p.is_dir())
    assert len(runs) == 2, f"two runs share a folder: {runs}"
    for run in runs:
        summary = check_run_folder(run)
        assert summary["epochs"] == 2, summary
    print(
        f"two concurrent trainings into one --logs: run folders {runs[0].name} and "
        f"{runs[1].name}, each with checkpoints 1..2 and its own metrics.jsonl"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.test_quality.fault_drill", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--drill",
        choices=DRILLS,
        default="training",
        help="training: SIGKILL and resume training (default); full-disk: every output "
        "command on a full tmpfs (root); kill-outputs: SIGKILL export and convert, then rerun",
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-delay", type=float, help="shortest kill delay, s (calibrated)")
    parser.add_argument("--max-delay", type=float, help="longest kill delay, s (calibrated)")
    parser.add_argument(
        "--only", nargs="+", metavar="WORD", help="full-disk: only the commands named so"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mrcnn_drill_") as folder:
        failed = DRILLS[args.drill](args, Path(folder))
    print(f"fault drill {'FAILED' if failed else 'passed'} in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


def _training(args, work: Path) -> bool:
    drill(args, work)
    concurrent(work)
    return False  # a failure is an AssertionError


def _full_disk(args, work: Path) -> bool:
    from tools.test_quality import output_drills

    rows = output_drills.full_disk(work, args.only)
    output_drills.print_table(rows, ("command", "result", "exit code and the one line"))
    return any(row[1] == "FAIL" for row in rows)


def _kill_outputs(args, work: Path) -> bool:
    from tools.test_quality import output_drills

    rows = output_drills.kill_drill(work, args.kills, args.seed)
    header = ("command", "kills", "mid-write", "had finished", "failed reruns", "detail")
    output_drills.print_table(rows, header)
    return any(row[4] not in ("0", "-") for row in rows)


DRILLS = {"training": _training, "full-disk": _full_disk, "kill-outputs": _kill_outputs}


if __name__ == "__main__":
    sys.exit(main())
