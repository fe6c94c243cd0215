"""Matterport .h5 models loaded into mrcnn must give the detections of Matterport's Keras model.

The reference is Matterport's Keras Mask R-CNN (the TensorFlow 2 port Ben-Sicat/mrcnn_tf2 under
tensorflow-cpu 2.21 / tf-keras 2.21), run once by tools/matterport_reference/make_reference.py
on seeded random-weight models; tools/matterport_reference/make_fixture.py copied its detections
on balloon photos into tests/fixtures/matterport/. Each fixture case also holds what
tools/matterport_reference/h5_models.py needs to write the model's .h5 again from its seed, so
this test needs neither TensorFlow nor a download: it writes the .h5 (in the Keras layout the case
names), loads it into an ordinary Config subclass with Matterport's calls, runs detect on the same
photo and pairs every Keras detection with one of ours (pair_detections in
tests/helpers/matterport_cases.py): same class, box within 1 px, score within 1e-3, mask IoU >=
0.95. All of them must pair on photos that need no resize (crops of the molded size); at least 95%
on photos at their native size, which molding resizes.

The R-101 / 81-class / 1024 cases take minutes on a CPU: they run with MRCNN_SLOW_EQUIVALENCE=1.

On a CUDA GPU (DEVICE "auto" picks it) the test turns TF32 off: the reference is float32 on a
CPU, and PyTorch's default TF32 convolutions alone unpair detections of these random-weight
models (tools/matterport_reference/tf32_on_cpu.py shows it on the CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mrcnn.model import MaskRCNN
from tests.helpers.matterport_cases import (
    MATTERPORT_FIXTURES,
    load_case,
    load_photo,
    matterport_config,
    pair_detections,
    write_case_h5,
)
from tools.matterport_reference.h5_models import weights_digest

CASES = sorted(MATTERPORT_FIXTURES.glob("*__*.npz"))  # <model>__<photo>.npz; <model>.npz: the model

MIN_PAIRED_NATIVE = 0.95


@pytest.fixture(autouse=True)
def float32_without_tf32():
    """Full float32 convolutions and matrix products on a GPU during each test (TF32 rounds
    their inputs to 10 mantissa bits: 5 of the 8 cases unpaired on an H100 with it on)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    yield
    cudnn.allow_tf32, matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def h5_for(module_tmp):
    """case -> its model's .h5 in the case's layout, written once per (model, layout)."""
    directory = module_tmp.mktemp("matterport_h5")
    written: dict[tuple[str, str], Path] = {}

    def get(case: dict) -> Path:
        key = (str(case["model"]), str(case["layout"]))
        if key not in written:
            written[key] = write_case_h5(case, directory)
        return written[key]

    return get


def describe_unpaired(keras: dict, ours: dict, pairs: np.ndarray) -> str:
    lines = []
    for k in np.flatnonzero(pairs < 0)[:5]:
        lines.append(
            f"keras #{k}: class {keras['class_ids'][k]} box {keras['rois'][k].tolist()} "
            f"score {keras['scores'][k]:.5f}"
        )
    near = [
        f"ours: class {c} box {b.tolist()} score {s:.5f}"
        for c, b, s in zip(ours["class_ids"], ours["rois"], ours["scores"], strict=True)
    ]
    return "\n".join(lines + near[:8])


@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_detections_match_matterport_keras(case_path: Path, tmp_path: Path, h5_for):
    case = load_case(case_path)
    if bool(case["slow"]) and os.environ.get("MRCNN_SLOW_EQUIVALENCE") != "1":
        pytest.skip(
            "R-101 / 81 classes / 1024 px case: takes minutes on a CPU; "
            "run with MRCNN_SLOW_EQUIVALENCE=1"
        )
    image = load_photo(case)
    h5 = h5_for(case)
    assert weights_digest(h5) == str(case["weights_sha1"]), (
        "the rebuilt .h5 differs from the weights Keras ran with"
    )

    config = matterport_config(case)
    model = MaskRCNN(mode="inference", config=config, model_dir=str(tmp_path / "logs"))
    model.load_weights(str(h5), by_name=True)
    ours = model.detect([image])[0]

    assert ours["masks"].shape[:2] == image.shape[:2]
    pairs = pair_detections(case, ours)
    paired = float(np.mean(pairs >= 0)) if len(pairs) else 1.0
    needs_no_resize = case["photo_crop"].size > 0
    required = 1.0 if needs_no_resize else MIN_PAIRED_NATIVE
    assert paired >= required, (
        f"{case_path.stem}: {int(np.sum(pairs >= 0))} of {len(pairs)} Keras detections paired "
        f"({len(ours['scores'])} of ours), need {required:.0%}\n"
        + describe_unpaired(case, ours, pairs)
    )


def test_every_case_rebuilds_the_weights_keras_ran_with(h5_for):
    """The seed, scales and manifest of each fixture write the very weights Keras saved (a change
    of numpy's random streams or of the drawing code would make the reference meaningless)."""
    checked = set()
    for path in CASES:
        case = load_case(path)
        key = str(case["model"])
        if bool(case["slow"]) or key in checked:
            continue
        checked.add(key)
        assert weights_digest(h5_for(case)) == str(case["weights_sha1"]), path.stem
    assert checked, f"no fast fixture case in {MATTERPORT_FIXTURES}"


def test_pairing_rejects_a_detection_off_by_two_pixels():
    """The pairing rule itself: a box 2 px away, another class or a score 2e-3 away do not pair."""
    masks = np.zeros((40, 40, 1), dtype=bool)
    masks[10:30, 10:30, 0] = True
    keras = {
        "rois": np.array([[10, 10, 30, 30]]),
        "class_ids": np.array([1]),
        "scores": np.array([0.9]),
        "masks": masks,
    }
    assert pair_detections(keras, dict(keras, rois=np.array([[11, 9, 31, 29]]))).tolist() == [0]
    assert pair_detections(keras, dict(keras, rois=np.array([[12, 10, 30, 30]]))).tolist() == [-1]
    assert pair_detections(keras, dict(keras, class_ids=np.array([2]))).tolist() == [-1]
    assert pair_detections(keras, dict(keras, scores=np.array([0.902]))).tolist() == [-1]
    shifted = np.roll(masks, 3, axis=0)
    assert pair_detections(keras, dict(keras, masks=shifted)).tolist() == [-1]
    # Empty masks (a degenerate box) pair only with an empty mask.
    empty = dict(keras, masks=np.zeros_like(masks))
    assert pair_detections(empty, dict(empty)).tolist() == [0]
    assert pair_detections(empty, keras).tolist() == [-1]
    assert pair_detections(keras, empty).tolist() == [-1]
