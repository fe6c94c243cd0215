"""The order of ``mrcnn rank`` (:mod:`mrcnn.labelling.rank`) on constructed signals, its
reasons, the CSV and the copies."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from mrcnn.datasets import from_spec
from mrcnn.labelling.rank import (
    COLUMNS,
    WEIGHTS,
    Pick,
    Row,
    already_labelled,
    copy_top,
    csv_text,
    greedy_order,
    reason,
    uncertainty,
    write_csv,
)
from mrcnn.labelling.signals import Signals, detection_uncertainty
from tests.helpers.annotations import shapes_with_holes, write_images, write_project


def _signals(detection=0.0, entropy=0.0, mask=0.0, flip=0.0, feature=(1.0, 0.0, 0.0)) -> Signals:
    return Signals(detection, entropy, mask, flip, np.asarray(feature, dtype=np.float32))


def _order(signals: list[Signals], labelled=None) -> list[int]:
    features = np.stack([s.feature for s in signals])
    return [p.index for p in greedy_order([uncertainty(s) for s in signals], features, labelled)]


# Distinct directions once centred: every photo is as far from the others.
FEATURES = np.eye(4) * 10


def test_the_weights_sum_to_one():
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_a_photo_with_a_score_near_the_threshold_ranks_above_one_with_sure_detections():
    sure, _ = detection_uncertainty(np.array([0.99, 0.98, 0.02]), 0.7)
    near, _ = detection_uncertainty(np.array([0.99, 0.72, 0.02]), 0.7)
    photos = [_signals(detection=sure, feature=FEATURES[0]), _signals(near, feature=FEATURES[1])]
    assert _order(photos) == [1, 0]


def test_a_photo_whose_detections_change_when_mirrored_ranks_higher():
    photos = [
        _signals(0.3, flip=0.0, feature=FEATURES[0]),
        _signals(0.3, flip=0.6, feature=FEATURES[1]),
        _signals(0.3, flip=0.2, feature=FEATURES[2]),
    ]
    assert _order(photos) == [1, 2, 0]


def test_a_duplicate_of_a_labelled_photo_ranks_lower():
    # Photo 0 is as uncertain as photo 1 but has the features of a labelled photo.
    labelled = np.stack([FEATURES[0], FEATURES[3]])
    photos = [_signals(0.6, feature=FEATURES[0]), _signals(0.6, feature=FEATURES[1])]
    picks = greedy_order([0.6, 0.6], np.stack([p.feature for p in photos]), labelled)
    assert [p.index for p in picks] == [1, 0]
    duplicate = picks[1]
    assert duplicate.diversity == pytest.approx(0.0, abs=1e-6)
    assert duplicate.near_labelled and duplicate.nearest == 0
    # Even a somewhat more uncertain duplicate falls behind.
    assert _order([_signals(0.7, feature=FEATURES[0]), photos[1]], labelled) == [1, 0]


def test_without_labelled_photos_a_second_copy_falls_behind_a_different_photo():
    photos = [
        _signals(0.8, feature=FEATURES[0]),
        _signals(0.8, feature=FEATURES[0]),  # the same photo twice
        _signals(0.7, feature=FEATURES[1]),
    ]
    picks = greedy_order(
        [uncertainty(s) for s in photos], np.stack([s.feature for s in photos]), None
    )
    assert [p.index for p in picks] == [0, 2, 1]
    assert picks[0].diversity == 1.0 and picks[0].nearest == -1  # nothing to compare with
    assert not picks[2].near_labelled and picks[2].nearest == 0


def test_scores_never_rise_and_ties_keep_the_input_order():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 8))
    picks = greedy_order(rng.uniform(size=30), features, rng.normal(size=(5, 8)))
    scores = [p.score for p in picks]
    assert scores == sorted(scores, reverse=True)
    assert sorted(p.index for p in picks) == list(range(30))
    same = greedy_order([0.5] * 3, np.zeros((3, 4)), None)
    assert [p.index for p in same] == [0, 1, 2]
    assert greedy_order([], np.zeros((0, 4)), None) == []


def test_the_reason_names_the_notable_signals_and_a_likeness():
    signals = Signals(0.9, 0.7, 0.1, 0.6, np.zeros(3), 2, 0.7, 0.66, (1, 2))
    pick = Pick(0, 0.5, 0.6, 0.01, 0, True)
    text = reason(signals, pick, ["BG", "cat", "dog"], ["a.jpg"], ["labelled.jpg"])
    assert text.startswith("a detection scored 0.66, just below the 0.70 threshold")
    assert "mirrored (0.60)" in text and "unsure whether cat or dog" in text
    assert "mask" not in text and "much like a labelled photo (labelled.jpg)" in text
    calm = reason(_signals(0.1), Pick(0, 0.3, 0.1, 1.0), ["BG"], ["a.jpg"])
    assert calm == "the model is fairly sure of this photo"


def _rows(paths: list[Path]) -> list[Row]:
    rows = []
    for rank, path in enumerate(paths, start=1):
        signals = _signals(0.5, flip=0.25)
        pick = Pick(rank - 1, 1.0 / rank, 0.4, 0.5)
        rows.append(Row(rank, path, pick, signals, f'why "{rank}", with a comma'))
    return rows


def test_the_csv_has_its_columns_and_reads_back(tmp_path):
    rows = _rows([tmp_path / "b.png", tmp_path / "a.png"])
    written = write_csv(tmp_path / "rank.csv", rows)
    read = list(csv.DictReader(io.StringIO(written.read_text())))
    assert tuple(read[0]) == COLUMNS
    assert [r["rank"] for r in read] == ["1", "2"]
    assert read[0]["file"] == str(tmp_path / "b.png") and read[1]["score"] == "0.5000"
    assert read[0]["flip_disagreement"] == "0.2500" and read[0]["reason"] == 'why "1", with a comma'
    assert csv_text([]).strip() == ",".join(COLUMNS)


def test_copies_never_write_over_a_file_already_there(tmp_path):
    photos = write_images(tmp_path / "photos", 3)
    target = tmp_path / "next"
    target.mkdir()
    (target / "img0.png").write_bytes(b"a person's file")
    copies = copy_top(_rows(photos), 2, target)
    assert (target / "img0.png").read_bytes() == b"a person's file"
    assert [c.name for _, c in copies] == ["img0_1.png", "img1.png"]
    assert (target / "img0_1.png").read_bytes() == photos[0].read_bytes()
    assert not (target / "img2.png").exists()
    before = sorted(target.iterdir())
    again = copy_top(_rows(photos), 1, target)  # a second run finds its earlier copy
    assert again == [(photos[0], target / "img0_1.png")] and sorted(target.iterdir()) == before


def test_photos_of_the_labelled_dataset_are_left_out(tmp_path):
    photos = write_images(tmp_path / "photos", 3)
    project = write_project(
        "coco", photos[:2], shapes_with_holes(), tmp_path / "photos" / "labelled.json"
    )
    dataset = from_spec(f"coco:{project}", None)
    fresh, known = already_labelled(photos, dataset)
    assert fresh == [photos[2]] and known == photos[:2]
