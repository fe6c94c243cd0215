"""Matterport's own samples/balloon/balloon.py runs on this package.

The script is Matterport's code, so it is not in this repository: point the environment
variable MRCNN_MATTERPORT_REPO at a checkout of https://github.com/matterport/Mask_RCNN (or
MRCNN_MATTERPORT_BALLOON at a copy of its samples/balloon/balloon.py). The test
changes only what any script needs on numpy >= 1.24 (``np.bool`` -> ``bool``); the dataset
is shared/data/balloon as published. On it the script's own ``load_mask`` raises IndexError for
the 7 training photos with a polygon vertex on the far edge (x == width or y == height: current
scikit-image's ``draw.polygon`` includes that pixel, one past the mask; Matterport issue #2592):
each gets one line and another photo takes its place, as Matterport's data generator did. It
runs the script as a program, as its usage says:

    balloon.py train --dataset=<balloon> --weights=<Matterport-format .h5> --logs=<dir>
    balloon.py splash --weights=last --image=<photo> --logs=<dir>

The .h5 is written by tools/matterport_reference/h5_models.py (random weights in Matterport's
Keras layout). To keep the run short on a CPU, the test (never the script) trains one full epoch
(every training photo, every validation photo) on 256 x 256 inputs instead of 30 epochs of 100
steps at 1024: it wraps ``MaskRCNN.__init__`` and ``MaskRCNN.train``.
"""

from __future__ import annotations

import json
import logging
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mrcnn.model as modellib
from tests.helpers.matterport_samples import port_numpy, published
from tests.helpers.paths import BALLOON
from tools.matterport_reference.h5_models import (
    fixture_manifest,
    with_num_classes,
    write_matterport_h5,
)

#: Small output layers, so that the random model's scores spread (see
#: tools/matterport_reference/h5_models.py).
OUTPUT_SCALES = {
    "rpn_class_raw": 0.1,
    "rpn_bbox_pred": 0.1,
    "mrcnn_class_logits": 0.1,
    "mrcnn_bbox_fc": 0.1,
    "mrcnn_mask": 0.1,
}

#: The published script: $MRCNN_MATTERPORT_BALLOON, else samples/balloon/balloon.py of the
#: Matterport checkout at $MRCNN_MATTERPORT_REPO (as the other samples' tests read them).
SCRIPT = os.environ.get("MRCNN_MATTERPORT_BALLOON") or str(
    published("samples/balloon/balloon.py") or ""
)

#: What the test shrinks, so that one epoch takes a minute on a CPU: still one full epoch,
#: 31 steps of the script's 2 images over the 61 training photos, 7 over the 13 validation ones.
SHORT_RUN = {
    "STEPS_PER_EPOCH": 31,
    "VALIDATION_STEPS": 7,
    "IMAGE_MIN_DIM": 256,
    "IMAGE_MAX_DIM": 256,
    "WORKERS": 0,
}

needs_script = pytest.mark.skipif(
    not SCRIPT or not Path(SCRIPT).is_file(),
    reason="set MRCNN_MATTERPORT_REPO to a checkout of Matterport's Mask_RCNN (or "
    "MRCNN_MATTERPORT_BALLOON to a copy of its samples/balloon/balloon.py)",
)
needs_balloon = pytest.mark.skipif(
    not BALLOON.is_dir(), reason=f"balloon dataset not found at {BALLOON}"
)


def test_port_changes_only_np_bool():
    source = "a = x.astype(np.bool)\nb = np.bool_(1)\nc = np.bool8\n"
    assert port_numpy(source) == "a = x.astype(bool)\nb = np.bool_(1)\nc = np.bool8\n"


@pytest.fixture
def short_runs(monkeypatch):
    """Cap the script's training (epochs=30, STEPS_PER_EPOCH=100, 1024 px) at a short run,
    recording what the script asked for."""
    asked = {}
    original_init, original_train = modellib.MaskRCNN.__init__, modellib.MaskRCNN.train

    def init(self, mode, config, model_dir="logs"):
        for key, value in SHORT_RUN.items():
            setattr(config, key, value)
        original_init(self, mode, config, model_dir)

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers, **kwargs):
        asked.update(epochs=epochs, layers=layers, learning_rate=learning_rate)
        asked.update(
            train_images=len(train_dataset.image_ids), val_images=len(val_dataset.image_ids)
        )
        original_train(self, train_dataset, val_dataset, learning_rate, 1, layers, **kwargs)

    monkeypatch.setattr(modellib.MaskRCNN, "__init__", init)
    monkeypatch.setattr(modellib.MaskRCNN, "train", train)
    return asked


def photos_with_far_edge_vertices(subset: str) -> set[str]:
    """The photos of ``BALLOON / subset`` with a polygon vertex at x == width or y == height,
    on which the script's ``load_mask`` raises IndexError."""
    annotations = json.loads((BALLOON / subset / "via_region_data.json").read_text())
    found = set()
    for entry in annotations.values():
        with Image.open(BALLOON / subset / entry["filename"]) as image:
            width, height = image.size
        for region in (entry["regions"] or {}).values():
            shape = region["shape_attributes"]
            if max(shape["all_points_x"]) >= width or max(shape["all_points_y"]) >= height:
                found.add(entry["filename"])
    return found


def _run_script(script: Path, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    runpy.run_path(str(script), run_name="__main__")


@needs_script
@needs_balloon
def test_matterport_balloon_script_trains_from_h5_and_splashes(
    tmp_path, monkeypatch, short_runs, caplog
):
    pytest.importorskip("skimage", reason="the script imports scikit-image (the test extra)")
    pytest.importorskip("h5py", reason="reading Matterport .h5 files needs h5py")
    script = tmp_path / "samples" / "balloon" / "balloon.py"
    script.parent.mkdir(parents=True)
    script.write_text(port_numpy(Path(SCRIPT).read_text()))
    # Matterport's default ResNet-101 layout (the COCO model's layers) with two classes, as in
    # Matterport's mask_rcnn_balloon.h5; seeded random weights in the Keras 2.0.8-2.2 layout.
    manifest = with_num_classes(fixture_manifest("r101_c81_1024"), 2)
    weights = write_matterport_h5(
        tmp_path / "mask_rcnn_balloon_random.h5", manifest, 3, OUTPUT_SCALES, layout="keras-2.2"
    )
    logs = tmp_path / "logs"
    monkeypatch.chdir(script.parent)  # the script writes its splash into the working folder

    with caplog.at_level(logging.WARNING, logger="mrcnn.training.bad_images"):
        _run_script(
            script,
            monkeypatch,
            "train",
            f"--dataset={BALLOON}",
            f"--weights={weights}",
            f"--logs={logs}",
        )
    assert short_runs["epochs"] == 30 and short_runs["layers"] == "heads"
    assert short_runs["train_images"] == 61 and short_runs["val_images"] == 13
    checkpoints = sorted(logs.glob("balloon*/mrcnn_balloon_0001.pt"))
    assert len(checkpoints) == 1, sorted(p.name for p in logs.rglob("*"))
    # One line for each of the 7 photos the script cannot mask, and the run went on.
    edge = photos_with_far_edge_vertices("train")
    assert len(edge) == 7 and not photos_with_far_edge_vertices("val")
    lines = [
        r.getMessage() for r in caplog.records if "load_mask raised IndexError" in r.getMessage()
    ]
    assert sorted(Path(line.split("(")[1].split(")")[0]).name for line in lines) == sorted(edge)
    records = [
        json.loads(x) for x in (checkpoints[0].parent / "metrics.jsonl").read_text().splitlines()
    ]
    assert sum(r.get("skipped_images", 0) for r in records) >= 7

    photo = sorted((BALLOON / "val").glob("*.jpg"))[0]
    _run_script(
        script, monkeypatch, "splash", "--weights=last", f"--image={photo}", f"--logs={logs}"
    )
    splashes = sorted(script.parent.glob("splash_*.png"))
    assert len(splashes) == 1
    with Image.open(photo) as original, Image.open(splashes[0]) as splash:
        assert splash.size == original.size
        pixels = np.asarray(splash)
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.std() > 0
