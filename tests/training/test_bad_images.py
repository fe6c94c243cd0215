"""Images whose load_image / load_mask raises: replaced, logged once, counted, and past a limit
the run stops with one line (issue 30)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from mrcnn.datasets import ShapesDataset
from mrcnn.datasets.failures import ImageFailure
from mrcnn.model import MaskRCNN
from mrcnn.training import bad_images as bad_images_module
from mrcnn.training.bad_images import (
    REPLACEMENT_TRIES,
    BadImageLimit,
    BadImages,
    TooManyBadImages,
    share_lower_bound,
)
from mrcnn.training.data import TrainingSamples, collate
from tests.helpers.bad_images import (
    EDGE_ERROR,
    BrokenShapes,
    broken_shapes,
    shapes_failing_for,
)
from tests.helpers.training import config

SKIP_NOTE = "; skipped, another image takes its place"
#: The smallest backbone: these tests are about the data, and its checkpoints are a quarter size.
SMALL = {"BACKBONE": "resnet18"}


def _edge_failure(image_id: int, subset: str = "train") -> ImageFailure:
    return ImageFailure(
        image_id, f"photos/{subset}_{image_id}.jpg", "load_mask", "IndexError", EDGE_ERROR
    )


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == bad_images_module.__name__]


def test_a_bad_image_is_replaced_and_its_failure_travels_with_the_batch():
    dataset = broken_shapes(4, bad_masks=[1], bad_images=[2])
    samples = TrainingSamples(dataset, config())
    replaced = samples[1]
    assert replaced["image_id"] not in (1, 2) and replaced["failures"][0] == _edge_failure(1)
    assert samples[0]["failures"] == []
    batch = collate([samples[0], samples[2]])
    assert batch.failures[0] == ImageFailure(
        2, "photos/train_2.jpg", "load_image", "OSError",
        "cannot identify image file 'photos/train_2.jpg'",
    )  # fmt: skip
    assert {f.image_id for f in batch.failures} <= {1, 2}  # the replacement may fail too
    assert len(batch.image_ids) == 2 and not {1, 2} & set(batch.image_ids.tolist())
    # Validation's images do not change from epoch to epoch: the same replacement every time.
    assert samples[1]["image_id"] == replaced["image_id"]


def test_a_sample_whose_every_try_fails_is_left_out_of_its_batch():
    dataset = broken_shapes(2, bad_masks=[0, 1])
    sample = TrainingSamples(dataset, config())[0]
    assert sample["image"] is None and len(sample["failures"]) == REPLACEMENT_TRIES
    batch = collate([sample])
    assert len(batch.image_ids) == 0 and len(batch.failures) == REPLACEMENT_TRIES


def test_the_limit_counts_distinct_images_and_judges_their_share_with_a_margin():
    said: list[str] = []
    bad = BadImages(100, BadImageLimit(share=0.2, z=3.0, min_read=8), say=said.append)
    bad.record("training", [0, 3], [_edge_failure(1), _edge_failure(1)])
    assert said == [f"training {_edge_failure(1).describe()}{SKIP_NOTE}"]  # once per image
    assert bad.excess() is None  # 1 of 3 read: too few images read to judge the share
    bad.record("training", range(2, 8), [_edge_failure(i) for i in (20, 21)])
    # 3 of 10 read fail (30%), but 10 of 100 cannot show that more than 20% of them fail
    assert len(bad.read) == 10 and bad.excess() is None
    bad.record("validation", [], [_edge_failure(1, "val")])  # another dataset's image 1
    assert bad.take_epoch() == (
        "skipped 5 failed image loads (training ids 1, 20, 21; validation id 1)"
    )
    assert bad.take_epoch() == ""
    bad.record("training", [], [_edge_failure(i) for i in range(30, 34)])
    assert bad.excess() == (
        "8 of the 15 distinct images read failed to load (53%): more than 20% of the 100 "
        "images fail"
    )


def test_every_image_read_makes_the_bound_the_observed_share():
    assert share_lower_bound(3, 10, 10, 3.0) == 0.3
    assert share_lower_bound(3, 10, 1000, 3.0) < 0.1  # a sample: the bound has a margin
    assert share_lower_bound(8, 8, 61, 3.0) > 0.2  # a loader wrong for every image


def test_matterports_balloon_share_goes_on_and_a_wrong_loader_stops_in_8_images():
    """Over random reading orders (the trainer reads a new permutation each epoch): the
    balloon set (7 of 61 photos fail in Matterport's load_mask) almost never stops, 30%
    broken images always stop, a loader that fails on everything stops at the 8th image."""
    rng = np.random.default_rng(0)

    def stop_at(population: int, broken: int) -> int | None:
        order = rng.permutation(population) < broken
        bad = BadImages(population, say=lambda line: None)
        for index, failed in enumerate(order):
            failures = [_edge_failure(index)] if failed else []
            bad.record("training", [] if failed else [index], failures)
            if bad.excess():
                return index + 1
        return None

    balloon = [stop_at(61, 7) for _ in range(1000)]
    assert sum(s is not None for s in balloon) <= 2
    assert all(stop_at(61, 18) is not None for _ in range(100))
    assert all(stop_at(10, 3) == 10 for _ in range(20))  # 30%, known once all are read
    assert stop_at(61, 61) == 8


@pytest.mark.parametrize("workers", [0, 2])
def test_one_bad_image_is_logged_once_counted_and_training_goes_on(
    tmp_path, caplog, capsys, workers
):
    # 2 of 10 images fail: 20%, not more, so no reading order stops the run.
    train = broken_shapes(5, bad_masks=[1])
    val = broken_shapes(5, bad_masks=[0], subset="val")
    # Each epoch: one step and one validation batch, each of every image of its dataset.
    settings = {"STEPS_PER_EPOCH": 1, "VALIDATION_STEPS": 1, "IMAGES_PER_GPU": 5}
    settings |= {**SMALL, "WORKERS": workers}
    model = MaskRCNN("training", config(**settings), tmp_path)
    with caplog.at_level(logging.WARNING):
        model.train(train, val, 0.01, epochs=2, layers="heads")
    assert _lines(caplog) == [
        f"training {_edge_failure(1).describe()}{SKIP_NOTE}",
        f"validation {_edge_failure(0, 'val').describe()}{SKIP_NOTE}",
    ]
    assert _lines(caplog)[0] == (
        "training image 1 (photos/train_1.jpg): load_mask raised IndexError: index 64 is out of "
        "bounds for axis 1 with size 64; skipped, another image takes its place"
    )
    epochs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 2
    for line in epochs:  # each epoch drew the bad images again, and says so
        assert "; skipped 2 failed image loads (training id 1; validation id 0); saved" in line
    records = [
        json.loads(line) for line in (model.log_dir / "metrics.jsonl").read_text().splitlines()
    ]
    steps = [r for r in records if "loss" in r]
    assert [r["skipped_images"] for r in steps] == [1, 1]
    assert [r["val_skipped_images"] for r in records if "val_loss" in r] == [1, 1]
    assert model.epoch == 2


@pytest.mark.parametrize("workers", [0, 2])
def test_too_many_bad_images_stop_the_run_with_one_line(tmp_path, caplog, workers):
    train = broken_shapes(10, bad_masks=[2, 5, 7])  # 30% of the images
    model = MaskRCNN("training", config(**SMALL, IMAGES_PER_GPU=10, WORKERS=workers), tmp_path)
    with caplog.at_level(logging.WARNING), pytest.raises(TooManyBadImages) as stop:
        model.train(train, None, 0.01, epochs=1, layers="heads")
    message = str(stop.value)
    assert "\n" not in message
    assert message == (
        "training stopped: 3 of the 10 distinct images read failed to load (30%): more than "
        "20% of the 10 images fail: "
        "training image 2 (photos/train_2.jpg): load_mask raised IndexError; "
        "training image 5 (photos/train_5.jpg): load_mask raised IndexError; "
        "training image 7 (photos/train_7.jpg): load_mask raised IndexError. Each error is "
        "logged above; `mrcnn inspect-data` lists every image that fails to load, or call "
        "dataset.load_mask(2) yourself to see the traceback. Fix or remove those images; "
        "nothing saved"
    )
    assert len(_lines(caplog)) == 3 and model.epoch == 0
    assert not list(tmp_path.rglob("*.pt"))


def test_a_batch_of_which_no_image_loads_stops_the_run(tmp_path, monkeypatch):
    # The share rule would stop this one-image dataset first ("1 of the 1 ..."): set it aside.
    monkeypatch.setattr(BadImages, "excess", lambda self: None)
    model = MaskRCNN("training", config(**SMALL), tmp_path)
    with pytest.raises(TooManyBadImages, match=r"no image of a training batch loaded \(10 tried"):
        model.train(broken_shapes(1, bad_masks=[0]), None, 0.01, epochs=1, layers="heads")


def test_cli_train_prints_the_stop_as_one_line(tmp_path, capsys, monkeypatch):
    from mrcnn.cli import main

    monkeypatch.setattr(ShapesDataset, "load_mask", shapes_failing_for(range(6)))
    code = main(
        ["train", "--dataset", "shapes:12:64", "--weights", "none", "--logs", str(tmp_path)]
        + ["--config", "tests.helpers.training:TinyConfig", "--set", "IMAGES_PER_GPU=12"]
        + ["--set", "BACKBONE=resnet18"]
        + ["--epochs", "1"]
    )
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(
        "mrcnn train: error: training stopped: 6 of the 12 distinct images read failed to load "
        "(50%): more than 20% of the "
    )
    assert "call dataset.load_mask(" in errors[0] and "mrcnn inspect-data" in errors[0]


class MasksOfAnotherSize(BrokenShapes):
    """Shapes whose ``load_mask`` returns, for the ids in ``wrong``, masks of another size
    than the image (a loader that reads the wrong annotation file): the loaders return, and
    the error comes when the sample is molded."""

    def __init__(self, wrong) -> None:
        super().__init__()
        self.wrong = set(wrong)

    def load_mask(self, image_id: int):
        masks, class_ids = super().load_mask(image_id)
        if int(image_id) in self.wrong:
            return masks[:40, :50], class_ids
        return masks, class_ids


def test_an_image_that_fails_after_loading_is_skipped_with_its_line_too(tmp_path, caplog):
    """Masks that do not fit their image make molding raise: that image is replaced with one
    line, as a loader's error is, and the stop names load_image_gt for the traceback."""
    dataset = MasksOfAnotherSize(wrong=[3])
    dataset.load_shapes(6, 64, 64, subset="train", seed=1, max_shapes=2)
    dataset.prepare()
    failure = TrainingSamples(dataset, config())[3]["failures"][0]
    assert failure.image_id == 3 and failure.method.startswith("augmenting or molding")
    assert failure.describe().endswith(
        "augmenting or molding its loaders' result raised ValueError: load_mask returned masks "
        "of shape (40, 50, 2) for an image of 64 x 64: they must be [H, W, N] of the image's size"
    )
    # One step of every image, so the run reads image 3; 1 of 6 is under the stop's share.
    settings = {**SMALL, "STEPS_PER_EPOCH": 1, "IMAGES_PER_GPU": 6}
    model = MaskRCNN("training", config(**settings), tmp_path)
    with caplog.at_level(logging.WARNING, logger=bad_images_module.__name__):
        model.train(dataset, None, 0.01, epochs=1, layers="heads")
    assert _lines(caplog) == [f"training {failure.describe()}{SKIP_NOTE}"]
    counter = BadImages(6, say=lambda line: None)
    counter.record("training", [], [failure])
    error = counter.stop_error("test", None)
    assert "mrcnn.model.load_image_gt(dataset, config, 3)" in str(error)
