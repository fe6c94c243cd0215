"""The Matterport equivalence fixtures (tests/fixtures/matterport): a case's Keras detections,
its photo, its config and its model rebuilt as a Matterport ``.h5``, and the rule that pairs
Keras's detections with ours."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnn.config import Config
from mrcnn.evaluation import compute_overlaps_masks
from tests.helpers.paths import BALLOON, FIXTURES
from tools.matterport_reference.h5_models import manifest_from_json, write_matterport_h5

MATTERPORT_FIXTURES = FIXTURES / "matterport"

BOX_TOLERANCE_PX = 1
SCORE_TOLERANCE = 1e-3
MIN_MASK_IOU = 0.95


def load_case(path: Path) -> dict:
    """A case's Keras detections (masks unpacked to bool [H, W, N]) and photo, and its model."""
    with np.load(path) as f:
        case = {key: f[key] for key in f.files}
    with np.load(MATTERPORT_FIXTURES / f"{case['model']}.npz") as f:
        case.update({key: f[key] for key in f.files})
    shape = tuple(case["masks_shape"])
    case["masks"] = (
        np.unpackbits(case["masks_packed"])[: int(np.prod(shape))].reshape(shape).astype(bool)
    )
    return case


def load_photo(case: dict) -> np.ndarray:
    """The photo as the Keras side read it (skimage.io.imread: RGB, no EXIF rotation), cropped."""
    path = BALLOON / "val" / str(case["photo_file"])
    if not path.is_file():
        pytest.skip(
            f"{path} is absent: the Matterport equivalence test needs the balloon dataset "
            "(/work/shared/data/balloon)"
        )
    image = np.asarray(Image.open(path).convert("RGB"))
    if case["photo_crop"].size:
        y, x, h, w = case["photo_crop"].tolist()
        image = image[y : y + h, x : x + w]
    image = np.ascontiguousarray(image)
    digest = hashlib.sha1(image.tobytes()).hexdigest()
    assert digest == str(case["image_sha1"]), (
        f"{path} is not the photo the fixture was made with (sha1 {digest})"
    )
    return image


def matterport_config(case: dict) -> Config:
    """An ordinary Config subclass, as a Matterport user writes it."""
    return type("MatterportUserConfig", (Config,), json.loads(str(case["config_json"])))()


def write_case_h5(case: dict, directory: Path) -> Path:
    path = directory / f"{case['model']}_{case['layout']}.h5"
    manifest = manifest_from_json(str(case["manifest_json"]))
    scales = json.loads(str(case["output_scales_json"]))
    write_matterport_h5(
        path,
        manifest,
        int(case["seed"]),
        scales,
        float(case["background_logit"]),
        str(case["layout"]),
        case["class_logit_projection"],
    )
    return path


def pair_detections(keras: dict, ours: dict) -> np.ndarray:
    """For each Keras detection, the index of the detection of ours it pairs with (-1: none).

    A pair has the same class, every box side within BOX_TOLERANCE_PX, scores within
    SCORE_TOLERANCE and mask IoU >= MIN_MASK_IOU (two empty masks agree); each of ours pairs
    at most once (greedy by mask IoU, Keras detections in score order)."""
    n_keras, n_ours = len(keras["class_ids"]), len(ours["class_ids"])
    if n_ours == 0 or n_keras == 0:
        return np.full(n_keras, -1)
    same_class = keras["class_ids"][:, None] == ours["class_ids"][None, :]
    box_close = (
        np.abs(keras["rois"][:, None, :].astype(np.int64) - ours["rois"][None, :, :]).max(-1)
        <= BOX_TOLERANCE_PX
    )
    score_close = np.abs(keras["scores"][:, None] - ours["scores"][None, :]) <= SCORE_TOLERANCE
    ious = compute_overlaps_masks(keras["masks"], ours["masks"].astype(bool))
    # Two empty masks (a box one pixel tall at the image edge) are the same mask: IoU 1, not 0.
    keras_empty = ~keras["masks"].reshape(-1, n_keras).any(0)
    ours_empty = ~ours["masks"].astype(bool).reshape(-1, n_ours).any(0)
    ious = np.where(keras_empty[:, None] & ours_empty[None, :], 1.0, ious)
    candidates = np.where(same_class & box_close & score_close & (ious >= MIN_MASK_IOU), ious, -1.0)
    pairs = np.full(n_keras, -1)
    for k in np.argsort(-keras["scores"], kind="stable"):
        j = int(np.argmax(candidates[k]))
        if candidates[k, j] >= 0:
            pairs[k] = j
            candidates[:, j] = -1.0
    return pairs
