"""Issue 12, smaller things: dataset warnings are one line each and the summary shows once, a
COCO file without annotations is flagged, --weights none is in --help, and a time-boxed run's
progress bar shows its budget instead of "epoch 1/10000"."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mrcnn.cli import main


def _coco(root: Path, count: int, annotations: list[dict]) -> str:
    images = root / "images"
    images.mkdir(parents=True)
    for i in range(1, count + 1):
        Image.fromarray(np.zeros((48, 48, 3), dtype=np.uint8)).save(images / f"{i}.png")
    data = {
        "images": [
            {"id": i, "file_name": f"{i}.png", "height": 48, "width": 48}
            for i in range(1, count + 1)
        ],
        "categories": [{"id": 1, "name": "blob"}],
        "annotations": annotations,
    }
    (root / "instances.json").write_text(json.dumps(data))
    return f"coco:{root / 'instances.json'}:{images}"


def _square(ann_id: int, image_id: int) -> dict:
    polygon = [10, 10, 30, 10, 30, 30, 10, 30]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "segmentation": [polygon],
        "bbox": [10, 10, 20, 20],
        "area": 400,
        "iscrowd": 0,
    }


def test_dataset_warnings_are_one_line_each_and_the_summary_shows_once(tmp_path, capsys):
    annotations = [_square(i, i) for i in range(1, 5)]
    annotations.append({**_square(9, 1), "segmentation": [[1, 2]]})  # too few points
    spec = _coco(tmp_path / "data", 4, annotations)
    argv = ["inspect-data", "--dataset", spec, "--subset", "all", "--out", str(tmp_path / "o")]
    assert main([*argv, "--samples", "1"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "annotation 9" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert "report." not in captured.err and "DatasetWarning" not in captured.err
    summary = "loaded 4 images with 4 regions"
    assert (captured.out + captured.err).count(summary) == 1


def test_coco_without_annotations_warns_and_train_refuses(tmp_path, capsys):
    spec = _coco(tmp_path / "data", 30, [])
    argv = ["train", "--dataset", spec, "--weights", "none", "--logs", str(tmp_path / "logs")]
    assert main([*argv, "--set", "NUM_CLASSES=2"]) == 1
    err = capsys.readouterr().err
    assert "warning: " in err and "none of the" in err and "has an annotation" in err
    assert "no annotated regions" in err.strip().splitlines()[-1]
    assert not (tmp_path / "logs").exists()


def test_weights_none_is_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "'none'" in capsys.readouterr().out


def test_time_boxed_progress_shows_the_budget():
    from mrcnn.training.trainer import Trainer

    trainer = SimpleNamespace(final_epoch=10_000, deadline=None, epoch_seconds=None)
    assert Trainer._progress_label(trainer, 3) == "epoch 3/10000"
    trainer.deadline = time.monotonic() + 120
    label = Trainer._progress_label(trainer, 3)
    assert "10000" not in label and label.startswith("epoch 3, 1") and "s of budget left" in label
    trainer.epoch_seconds = 30.0  # 9998 epochs left do not fit in 120 s: the budget stays
    assert Trainer._progress_label(trainer, 3).endswith("s of budget left")


def test_progress_estimates_the_time_left_from_the_last_epoch():
    from mrcnn.training.trainer import Trainer

    trainer = SimpleNamespace(final_epoch=10, deadline=None, epoch_seconds=None)
    assert Trainer._progress_label(trainer, 1) == "epoch 1/10"  # nothing measured yet
    trainer.epoch_seconds = 30.0
    assert Trainer._progress_label(trainer, 3) == "epoch 3/10, about 4 min left"  # 8 x 30 s
    assert Trainer._progress_label(trainer, 10) == "epoch 10/10, about 30 s left"
    trainer.deadline = time.monotonic() + 3600  # a cap far off: the plan and its estimate
    assert Trainer._progress_label(trainer, 3) == "epoch 3/10, about 4 min left"
    trainer.epoch_seconds = 1000.0
    assert Trainer._progress_label(trainer, 9) == "epoch 9/10, about 33 min left"
    trainer.deadline = None
    trainer.epoch_seconds = 3000.0
    assert Trainer._progress_label(trainer, 9) == "epoch 9/10, about 1.7 h left"


@pytest.mark.parametrize(
    "argv",
    [
        ["demo"],
        ["inspect-data", "--dataset", "shapes"],
        ["detect", "--input", "x.jpg", "--weights", "w.pt"],
        ["splash", "--image", "x.jpg", "--weights", "w.pt"],
        ["evaluate", "--dataset", "shapes", "--weights", "w.pt"],
    ],
)
def test_every_command_that_writes_files_takes_output(argv):
    from mrcnn.cli import build_parser

    args = build_parser().parse_args([*argv, "--output", "here"])
    assert getattr(args, "output", None) == "here" or getattr(args, "out", None) == "here"
