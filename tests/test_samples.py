"""The sample scripts: --help, short training runs, nucleus submission files, COCO evaluation.

Every run uses a tiny network (ResNet-18, 64-128 px inputs, one or two steps) so the whole file
stays within a few tens of seconds on two CPU cores.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.paths import REPO

SAMPLES = REPO / "samples"
BALLOON = REPO.parent / "shared" / "data" / "balloon"

#: A network small enough to train a step in about a second on a CPU.
TINY = [
    "BACKBONE=resnet18",
    "IMAGES_PER_GPU=1",
    "STEPS_PER_EPOCH=1",
    "VALIDATION_STEPS=1",
    "WORKERS=0",
    "DEVICE=cpu",
    "TOP_DOWN_PYRAMID_SIZE=32",
    "FPN_CLASSIF_FC_LAYERS_SIZE=64",
    "MASK_HEAD_CHANNELS=16",
    "PRE_NMS_LIMIT=500",
    "POST_NMS_ROIS_TRAINING=64",
    "POST_NMS_ROIS_INFERENCE=64",
    "TRAIN_ROIS_PER_IMAGE=16",
    "WARMUP_STEPS=1",
]


def load_sample(name: str):
    """Import samples/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"sample_{name}", SAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def with_sets(values: list[str]) -> list[str]:
    return [part for value in values for part in ("--set", value)]


@pytest.mark.parametrize(
    ("name", "commands"),
    [
        ("balloon", ("train", "splash")),
        ("shapes", ("train", "detect")),
        ("coco", ("train", "evaluate")),
        ("nucleus", ("train", "detect")),
    ],
)
def test_help(name: str, commands: tuple[str, ...], capsys) -> None:
    module = load_sample(name)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(command in text for command in commands)
    assert "--weights" in text or name == "shapes"


def test_shapes_trains_and_detects(tmp_path: Path, capsys) -> None:
    shapes = load_sample("shapes")
    sets = with_sets(["STEPS_PER_EPOCH=1", "VALIDATION_STEPS=1", "WORKERS=0", "IMAGES_PER_GPU=1"])
    sets += with_sets(["IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64", "DEVICE=cpu"])
    logs = str(tmp_path / "logs")
    args = ["--logs", logs, "--images", "10", "--seconds", "1", "--epochs", "1"]
    assert shapes.main(["train", *args, *sets]) == 0
    assert len(list((tmp_path / "logs").glob("shapes*/mrcnn_shapes_0001.pt"))) == 1
    out = tmp_path / "detections"
    assert shapes.main(["detect", "--logs", logs, "--count", "1", "--output", str(out), *sets]) == 0
    assert len(list(out.glob("*.png"))) == 1
    assert "mAP@0.5" in capsys.readouterr().out


@pytest.mark.skipif(not BALLOON.is_dir(), reason=f"balloon dataset not found at {BALLOON}")
def test_balloon_trains_one_epoch_and_splashes(tmp_path: Path) -> None:
    balloon = load_sample("balloon")
    sets = with_sets([*TINY, "IMAGE_MIN_DIM=128", "IMAGE_MAX_DIM=128"])
    logs = str(tmp_path / "logs")
    args = ["--dataset", str(BALLOON), "--weights", "none", "--logs", logs, "--epochs", "1"]
    assert balloon.main(["train", *args, *sets]) == 0
    assert len(list((tmp_path / "logs").glob("balloon*/mrcnn_balloon_0001.pt"))) == 1
    image = sorted((BALLOON / "val").glob("*.jpg"))[0]
    out = tmp_path / "splash.png"
    splash = ["splash", "--weights", "last", "--logs", logs, "--image", str(image)]
    assert balloon.main([*splash, "--output", str(out), *sets]) == 0
    assert out.is_file()


def test_balloon_reports_unusable_weights(tmp_path: Path, capsys) -> None:
    balloon = load_sample("balloon")
    args = ["train", "--dataset", str(tmp_path)]
    code = balloon.main([*args, "--weights", "coco", *with_sets(TINY)])
    assert code == 1
    assert "resnet50" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Nucleus
# ------------------------------------------------------------------------------------------------
def test_rle_round_trip_and_order() -> None:
    nucleus = load_sample("nucleus")
    mask = np.zeros((3, 4), bool)
    mask[1:3, 0] = True  # pixels 2, 3 (column-major, 1-based)
    mask[0, 1] = True  # pixel 4
    mask[2, 3] = True  # pixel 12
    assert nucleus.rle_encode(mask) == "2 3 12 1"
    assert np.array_equal(nucleus.rle_decode("2 3 12 1", (3, 4)), mask)
    assert nucleus.rle_encode(np.zeros((2, 2), bool)) == ""
    with pytest.raises(ValueError, match="outside"):
        nucleus.rle_decode("12 2", (3, 4))


def test_exclusive_masks_give_overlaps_to_the_best_score() -> None:
    nucleus = load_sample("nucleus")
    masks = np.zeros((4, 4, 4), bool)
    masks[:3, :3, 0] = True  # largest, middle score
    masks[1:3, 1:3, 1] = True  # small, best score: keeps all its pixels
    masks[:, 2:, 2] = True  # large, worst score: loses the overlaps
    masks[1, 1, 3] = True  # inside the best one: dropped
    out = nucleus.exclusive_masks(masks, np.array([0.5, 0.9, 0.1, 0.3]))
    expected = np.zeros((4, 4, 3), bool)
    expected[:, :, 0] = masks[:, :, 1]
    expected[:, :, 1] = masks[:, :, 0] & ~masks[:, :, 1]
    expected[:, :, 2] = masks[:, :, 2] & ~masks[:, :, 0] & ~masks[:, :, 1]
    np.testing.assert_array_equal(out, expected)


def write_nucleus_layout(root: Path) -> list[tuple[str, tuple[int, int]]]:
    """Two test images, one grayscale and one RGBA, in the competition's layout."""
    rng = np.random.default_rng(0)
    made = []
    for name, mode, shape in (("gray01", "L", (48, 64)), ("rgba02", "RGBA", (64, 40))):
        folder = root / "stage1_test" / name / "images"
        folder.mkdir(parents=True)
        channels = {"L": (), "RGBA": (4,)}[mode]
        pixels = rng.integers(0, 255, (*shape, *channels), dtype=np.uint8)
        Image.fromarray(pixels, mode).save(folder / f"{name}.png")
        made.append((name, shape))
    return made


def tiny_nucleus_checkpoint(nucleus, sets: list[str], path: Path) -> Path:
    """A random network whose heads favour the nucleus class and full masks, so that it
    detects overlapping instances."""
    from mrcnn.model import MaskRCNN

    config = nucleus.NucleusInferenceConfig.from_overrides(sets)
    model = MaskRCNN("inference", config)
    with torch.no_grad():
        model.net.box_head.class_logits.bias.copy_(torch.tensor([-4.0, 4.0]))
        model.net.mask_head.logits.bias.fill_(4.0)
    torch.save(model.net.state_dict(), path)
    return path


def test_nucleus_detect_writes_a_valid_submission(tmp_path: Path) -> None:
    nucleus = load_sample("nucleus")
    made = write_nucleus_layout(tmp_path / "data")
    sets = [*TINY, "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64", "IMAGE_MIN_SCALE=0"]
    weights = tiny_nucleus_checkpoint(nucleus, sets, tmp_path / "tiny.pt")
    output = tmp_path / "submit.csv"
    args = ["detect", "--dataset", str(tmp_path / "data"), "--subset", "stage1_test"]
    args += ["--weights", str(weights), "--output", str(output), *with_sets(sets)]
    assert nucleus.main(args) == 0

    with output.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert set(rows[0]) == {"ImageId", "EncodedPixels"}
    assert {r["ImageId"] for r in rows} == {name for name, _ in made}
    found = 0
    for name, shape in made:
        encoded = [r["EncodedPixels"] for r in rows if r["ImageId"] == name]
        if encoded == [""]:
            continue
        masks = np.stack([nucleus.rle_decode(text, shape) for text in encoded])
        assert masks.shape[1:] == shape
        assert masks.any(axis=(1, 2)).all()
        assert masks.sum(axis=0).max() == 1, "instances overlap"
        found += len(masks)
    assert found > 1


def write_nucleus_training_layout(root: Path) -> None:
    """stage1_train with train/ and val/ folders: one image and one mask file per nucleus each."""
    rng = np.random.default_rng(1)
    for split, names in (("train", ["t1", "t2"]), ("val", ["v1"])):
        for name in names:
            folder = root / "stage1_train" / split / name
            (folder / "images").mkdir(parents=True)
            (folder / "masks").mkdir()
            pixels = rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)
            for k, (y, x) in enumerate([(8, 10), (38, 34)]):
                mask = np.zeros((64, 64), np.uint8)
                mask[y : y + 14, x : x + 16] = 255
                pixels[mask > 0] = 200
                Image.fromarray(mask).save(folder / "masks" / f"nucleus{k}.png")
            Image.fromarray(pixels).save(folder / "images" / f"{name}.png")


def test_nucleus_trains_one_epoch(tmp_path: Path, capsys) -> None:
    nucleus = load_sample("nucleus")
    write_nucleus_training_layout(tmp_path / "data")
    logs = tmp_path / "logs"
    args = ["train", "--dataset", str(tmp_path / "data"), "--weights", "none", "--epochs", "1"]
    sets = [*TINY, "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64"]
    assert nucleus.main([*args, "--logs", str(logs), *with_sets(sets)]) == 0
    assert len(list(logs.glob("nucleus*/mrcnn_nucleus_0001.pt"))) == 1
    out = capsys.readouterr().out
    assert "(train): loaded 2 images with 4 regions" in out
    assert "(val): loaded 1 images with 2 regions" in out


def test_nucleus_image_without_detections_gets_an_empty_row() -> None:
    nucleus = load_sample("nucleus")
    rows = nucleus.submission_rows("abc", np.zeros((5, 5, 0), bool), np.zeros(0))
    assert rows == [["abc", ""]]


# ------------------------------------------------------------------------------------------------
# COCO
# ------------------------------------------------------------------------------------------------
def write_coco_layout(root: Path, count: int = 2, split: str = "val") -> None:
    """A COCO-layout <split>2017 of shapes scenes (categories with COCO-like sparse ids)."""
    from mrcnn.datasets import from_spec
    from mrcnn.evaluation import dataset_to_coco

    shapes = from_spec(f"shapes:{count * 10}:64", split)
    data = dataset_to_coco(shapes)
    (root / f"{split}2017").mkdir(parents=True)
    (root / "annotations").mkdir(exist_ok=True)
    for image in data["images"]:
        image["file_name"] = f"{int(image['id']):012d}.png"
        pixels = shapes.load_image(int(image["id"]))
        Image.fromarray(pixels).save(root / f"{split}2017" / image["file_name"])
    for category in data["categories"]:
        category.setdefault("supercategory", "shape")
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))


def test_coco_trains_one_epoch_on_a_small_coco_layout(tmp_path: Path) -> None:
    coco = load_sample("coco")
    for split in ("train", "val"):
        write_coco_layout(tmp_path / "coco", split=split)
    logs = tmp_path / "logs"
    args = ["train", "--dataset", str(tmp_path / "coco"), "--weights", "none", "--epochs", "1"]
    sets = [*TINY, "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64"]
    assert coco.main([*args, "--logs", str(logs), *with_sets(sets)]) == 0
    (checkpoint,) = logs.glob("coco*/mrcnn_coco_0001.pt")
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["config"]["NUM_CLASSES"] == 4  # background + the layout's three categories


def test_coco_evaluate_on_a_small_coco_layout(tmp_path: Path, capsys) -> None:
    from mrcnn.model import MaskRCNN

    coco = load_sample("coco")
    write_coco_layout(tmp_path / "coco")
    sets = [*TINY, "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64", "NUM_CLASSES=4"]
    model = MaskRCNN("inference", coco.CocoInferenceConfig.from_overrides(sets))
    torch.save(model.net.state_dict(), tmp_path / "tiny.pt")
    args = ["evaluate", "--dataset", str(tmp_path / "coco"), "--weights", str(tmp_path / "tiny.pt")]
    output = tmp_path / "results.json"
    assert coco.main([*args, "--output", str(output), *with_sets(sets)]) == 0
    assert isinstance(json.loads(output.read_text()), list)
    assert "COCO segm" in capsys.readouterr().out
