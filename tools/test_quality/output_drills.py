"""Output drills of issue 31: a full disk, and SIGKILL during ``mrcnn export`` / ``convert``.

full-disk: on a small tmpfs (``mount -t tmpfs -o size=3M``; needs root), filled with a filler
file until only :data:`FREE_BYTES` are free before each command, run ``mrcnn detect`` (JSON and
figure), ``mrcnn splash`` on an image and on a video, ``mrcnn export`` (ONNX), ``mrcnn convert``
(a Matterport .h5 to .safetensors) and ``mrcnn train`` (its checkpoint) with the outputs on the
tmpfs. Each must exit non-zero with ONE line naming the output path and "no space left on
device", no traceback, no file under a final output name and no temporary of ours left.

kill: start ``mrcnn export`` / ``mrcnn convert`` (with ``--overwrite``), SIGKILL it at a random
moment (half of the kills at a random delay after start, half at a random delay after its
temporary file appears, so that writes are hit), then rerun the same command: the rerun must
succeed, the file must load (onnx.load / safetensors) and no ``.NAME.mrcnn-tmp-*`` is left.

Run through ``python -m tools.test_quality.fault_drill --drill full-disk|kill-outputs``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.test_quality.fault_drill import CONFIG, DATASET

#: Bytes left free on the tmpfs before each command of the full-disk drill.
FREE_BYTES = 4096  # detect's JSON of one small image fits there: its case leaves none
#: Size of the drill's tmpfs.
TMPFS_SIZE = "3M"
#: Names of this project's temporary files (mrcnn.outputs.TEMPORARY_TAG) and of
#: atomic_torch_save's.
TEMPORARY = re.compile(r"\.mrcnn-tmp-|^\..*\.tmp$")
#: Longest kill delay, s, after the temporary appears (writing it takes some 0.1-0.5 s here).
WRITE_WINDOW = 0.3
#: Seconds one drilled command may run.
COMMAND_TIMEOUT = 600


@dataclass
class Inputs:
    """The drill's input files (outside the tmpfs)."""

    folder: Path
    checkpoint: Path = field(init=False)
    image: Path = field(init=False)
    video: Path = field(init=False)
    h5: Path = field(init=False)


@dataclass
class Case:
    """One drilled command: its argv (outputs under ``out``) and its final output names."""

    name: str
    argv: list[str]
    finals: list[str]  # glob patterns under out
    leave: int = FREE_BYTES  # bytes left free on the tmpfs (0: even a small JSON fails)


@dataclass
class Outcome:
    """What one drilled command did."""

    returncode: int
    stderr: str
    files: list[Path]  # every file left under the output folder (filler excluded)


def mrcnn(*args: str) -> list[str]:
    return [sys.executable, "-m", "mrcnn", *args]


def make_inputs(folder: Path, h5: bool = True) -> Inputs:
    """A random tiny checkpoint (the fault drill's network), a 64 x 96 image, a 5-frame video
    and (``h5``) a Matterport-layout .h5 of random weights."""
    import cv2
    import torch

    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN
    from mrcnn.weights.checkpoint import atomic_torch_save, checkpoint_payload

    inputs = Inputs(folder)
    torch.manual_seed(0)
    overrides = {**CONFIG, "DETECTION_MIN_CONFIDENCE": 0, "DETECTION_MAX_INSTANCES": 5}
    model = MaskRCNN("inference", Config.from_overrides(overrides))
    inputs.checkpoint = folder / "tiny.pt"
    payload = checkpoint_payload(model.net.state_dict(), model.config, 1)
    atomic_torch_save(payload, inputs.checkpoint)
    rng = np.random.default_rng(0)
    inputs.image = folder / "photo.png"
    cv2.imwrite(str(inputs.image), rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    inputs.video = folder / "clip.mp4"
    writer = cv2.VideoWriter(str(inputs.video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 64))
    for _ in range(5):
        writer.write(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    writer.release()
    inputs.h5 = folder / "matterport.h5"
    if h5:
        write_matterport_h5(inputs.h5)
    return inputs


def write_matterport_h5(path: Path) -> Path:
    """A random Matterport ResNet-50 model (2 classes) in Keras 2.2's layout (some 180 MB)."""
    from tools.matterport_reference.h5_models import fixture_manifest, write_matterport_h5

    return write_matterport_h5(path, fixture_manifest("r50_c2_512"), 0, {}, layout="keras-2.2")


def cases(inputs: Inputs, out: Path, config: Path) -> list[Case]:
    """The drilled commands, each writing under ``out``."""
    weights = ["--weights", str(inputs.checkpoint)]
    train = ["--dataset", DATASET, "--config", str(config), "--weights", "none"]
    return [
        Case(
            "detect (JSON + figure)",
            mrcnn("detect", *weights, "--input", str(inputs.image), "--output", str(out)),
            ["*.json", "*.png"],
            leave=0,
        ),
        Case(
            "splash image",
            mrcnn("splash", *weights, "--image", str(inputs.image), "--output", str(out / "s.png")),
            ["s.png", "s_*.png"],
        ),
        Case(
            "splash video",
            mrcnn("splash", *weights, "--video", str(inputs.video), "--output", str(out / "s.mp4")),
            ["s.mp4", "s_*.mp4", "s.partial*.mp4"],
        ),
        Case("export (ONNX)", mrcnn("export", *weights, str(out / "m.onnx")), ["m.onnx"]),
        Case(
            "convert (.h5 to .safetensors)",
            mrcnn("convert", str(inputs.h5), str(out / "m.safetensors")),
            ["m.safetensors"],
        ),
        Case(
            "train (checkpoint)",
            mrcnn("train", *train, "--logs", str(out / "logs"), "--epochs", "1", "--layers", "all"),
            ["logs/*/mrcnn_*.pt"],
            leave=512 * 1024,  # room for the run folder's config, events and metrics
        ),
    ]


def skip_reason(case: Case) -> str:
    """Why a case cannot run here ("" when it can)."""
    if case.name.startswith("export"):
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            return "onnx/onnxscript not installed (pip install onnx onnxscript)"
    if case.name.startswith("convert"):
        try:
            import h5py  # noqa: F401
        except ImportError:
            return "h5py not installed (needed to write the drill's .h5)"
    return ""


# ------------------------------------------------------------------------------------------------
# Full disk
# ------------------------------------------------------------------------------------------------
def mount_reason() -> str:
    """Why a tmpfs cannot be mounted here ("" when it can be tried)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not root: mounting a tmpfs needs root (run the drill as root)"
    if shutil.which("mount") is None:
        return "no mount command"
    return ""


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str = TMPFS_SIZE) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``folder`` (created); unmount it at the end, whatever
    happens. Raises RuntimeError (one line) when the mount fails."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        raise RuntimeError(f"mount -t tmpfs on {folder} failed: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def fill(folder: Path, leave: int = FREE_BYTES) -> Path:
    """Empty ``folder``, make ``folder/out`` and write a filler file that leaves about
    ``leave`` bytes free."""
    for entry in folder.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    (folder / "out").mkdir()
    stat = os.statvfs(folder)
    filler = folder / "filler"
    with open(filler, "wb") as stream:
        stream.write(bytes(max(0, stat.f_bavail * stat.f_frsize - leave)))
    return filler


def run_case(case: Case, out: Path, timeout: int = COMMAND_TIMEOUT) -> Outcome:
    """Run a drilled command; list every file it left under ``out`` (but the filler)."""
    done = subprocess.run(
        case.argv, capture_output=True, text=True, check=False, timeout=timeout, cwd=out.parent
    )
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "filler")
    return Outcome(done.returncode, done.stderr, files)


def full_disk_failures(case: Case, out: Path, outcome: Outcome) -> list[str]:
    """What the full-disk rule finds wrong with an outcome ([] when it passed)."""
    problems = []
    if outcome.returncode == 0:
        problems.append("exit code 0")
    lines = [line for line in outcome.stderr.splitlines() if "no space left on device" in line]
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines say 'no space left on device'")
    elif str(out) not in lines[0]:
        problems.append("the line names no output path")
    if "Traceback" in outcome.stderr:
        problems.append("a traceback")
    finals = [
        p
        for pattern in case.finals
        for p in out.glob(pattern)
        if p.is_file() and not TEMPORARY.search(p.name)  # pathlib's glob matches dot files
    ]
    if finals:
        problems.append(f"files under final names: {', '.join(p.name for p in finals)}")
    temporaries = [p.name for p in outcome.files if TEMPORARY.search(p.name)]
    if temporaries:
        problems.append(f"temporaries left: {', '.join(temporaries)}")
    return problems


def full_disk(work: Path, chosen: list[str] | None = None) -> list[tuple[str, str, str]]:
    """Run the full-disk drill; rows (command, result, detail) of its table."""
    reason = mount_reason()
    config = work / "drill.json"
    config.write_text(json.dumps(CONFIG))
    inputs = make_inputs(work / "inputs")
    disk = work / "disk"
    rows = []
    try:
        with small_tmpfs(disk):
            for case in cases(inputs, disk / "out", config):
                if chosen and not any(c in case.name for c in chosen):
                    continue
                rows.append(_full_disk_row(case, disk))
    except RuntimeError as error:  # the mount failed
        reason = str(error)
    if reason and not rows:
        return [(case.name, "skipped", reason) for case in cases(inputs, disk, config)]
    return rows


def _full_disk_row(case: Case, disk: Path) -> tuple[str, str, str]:
    skipped = skip_reason(case)
    if skipped:
        return (case.name, "skipped", skipped)
    fill(disk, case.leave)
    out = disk / "out"
    started = time.perf_counter()
    outcome = run_case(case, out)
    problems = full_disk_failures(case, out, outcome)
    said = next((ln for ln in outcome.stderr.splitlines() if "no space left" in ln), "")
    said = said.strip().replace(str(disk), "TMPFS")
    detail = "; ".join(problems) or f"exit {outcome.returncode}: {said}"
    seconds = time.perf_counter() - started
    return (case.name, "FAIL" if problems else "pass", f"{detail} ({seconds:.0f} s)")


def print_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# ------------------------------------------------------------------------------------------------
# SIGKILL during export and convert, then a rerun
# ------------------------------------------------------------------------------------------------
def temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if TEMPORARY.search(p.name))


def kill_at(argv: list[str], folder: Path, delay: float, after_temporary: bool) -> dict:
    """Start ``argv``, SIGKILL it ``delay`` s after start (or after a temporary file appears
    in ``folder``); say whether it had exited and whether it left a temporary."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    if after_temporary:
        while process.poll() is None and not temporaries(folder):
            time.sleep(0.01)
        start = time.monotonic()
    while process.poll() is None and time.monotonic() - start < delay:
        time.sleep(0.01)
    exited = process.poll() is not None
    process.kill()
    process.wait()
    return {"exited": exited, "left a temporary": bool(temporaries(folder))}


def rerun_failures(
    argv: list[str], target: Path, loads: Callable[[Path], None], timeout: int = COMMAND_TIMEOUT
) -> list[str]:
    """Rerun ``argv`` after a kill: it must succeed, ``target`` must load, no temporary may
    be left beside it. Returns the problems ([] when it passed)."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    problems = []
    if done.returncode:
        problems.append(f"rerun exit {done.returncode}: {done.stderr.strip()[-300:]}")
    try:
        loads(target)
    except Exception as error:  # any failure to load is what the drill reports
        problems.append(f"{target.name} does not load: {type(error).__name__}: {error}"[:300])
    left = [p.name for p in temporaries(target.parent)]
    if left:
        problems.append(f"temporaries left: {', '.join(left)}")
    return problems


def load_onnx(path: Path) -> None:
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))


def load_safetensors(path: Path) -> None:
    from safetensors.torch import load_file

    if not load_file(str(path)):
        raise ValueError("no tensors")


def kill_drill(work: Path, kills: int, seed: int) -> list[tuple[str, ...]]:
    """SIGKILL ``mrcnn export`` and ``mrcnn convert`` ``kills`` times each; rows of a table."""
    rng = random.Random(seed)
    inputs = make_inputs(work / "inputs")
    out = work / "out"
    out.mkdir()
    weights = ["--weights", str(inputs.checkpoint), "--overwrite"]
    commands = {
        "export (ONNX)": (
            mrcnn("export", *weights, str(out / "m.onnx")),
            out / "m.onnx",
            load_onnx,
        ),
        "convert (.h5 to .safetensors)": (
            mrcnn("convert", str(inputs.h5), str(out / "m.safetensors"), "--overwrite"),
            out / "m.safetensors",
            load_safetensors,
        ),
    }
    rows = []
    for name, (argv, target, loads) in commands.items():
        skipped = skip_reason(Case(name, argv, []))
        if skipped:
            rows.append((name, "0", "-", "-", "-", f"skipped: {skipped}"))
            continue
        rows.append(_kill_row(name, argv, target, loads, kills, rng))
    return rows


def _kill_row(name, argv, target: Path, loads, kills: int, rng: random.Random) -> tuple:
    started = time.monotonic()
    assert not rerun_failures(argv, target, loads), f"{name}: a plain run fails"
    whole = time.monotonic() - started
    counts = {"mid-write": 0, "finished": 0, "failures": 0}
    notes = []
    for index in range(kills):
        after_temporary = index % 2 == 1
        delay = rng.uniform(0, WRITE_WINDOW if after_temporary else whole)
        seen = kill_at(argv, target.parent, delay, after_temporary)
        counts["mid-write"] += seen["left a temporary"]
        counts["finished"] += seen["exited"]
        problems = rerun_failures(argv, target, loads)
        counts["failures"] += bool(problems)
        notes += problems
    detail = "; ".join(notes[:2]) or f"every rerun succeeded and loads (a run: {whole:.0f} s)"
    return (
        name,
        str(kills),
        str(counts["mid-write"]),
        str(counts["finished"]),
        str(counts["failures"]),
        detail,
    )
