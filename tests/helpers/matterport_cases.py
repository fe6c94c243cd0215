"""The Matterport equivalence fixtures (tests/fixtures/matterport): a case's Keras detections,
its photo, its config and its model rebuilt as a Matterport ``.h5``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnn.config import Config
from tests.helpers.matterport_h5 import manifest_from_json, write_matterport_h5
from tests.helpers.paths import BALLOON, FIXTURES

MATTERPORT_FIXTURES = FIXTURES / "matterport"


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
