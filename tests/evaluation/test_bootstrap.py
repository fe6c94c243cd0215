"""Bootstrap intervals (issue 33): the draws, closed forms of the bootstrap of a mean, the
weighted dataset AP and COCO AP against recomputing them on the expanded image lists, the
coverage of the interval on synthetic images of known mean AP, and the settings' errors."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from benchmarks.bootstrap_coverage import coverage
from mrcnn.evaluation import Bootstrap, compute_ap_dataset, resample_counts
from mrcnn.evaluation.bootstrap import (
    coco_ap_samples,
    coco_records,
    dataset_ap_samples,
    mean_samples,
    warn_if_few,
)


def test_draws_are_resamples_of_the_images_and_follow_the_seed():
    counts = resample_counts(7, 500, seed=3)
    assert counts.shape == (500, 7) and (counts.sum(axis=1) == 7).all()
    # With replacement: some image is drawn twice in nearly every resample.
    assert (counts.max(axis=1) > 1).mean() > 0.9
    assert np.array_equal(counts, resample_counts(7, 500, seed=3))
    assert not np.array_equal(counts, resample_counts(7, 500, seed=4))
    assert np.array_equal(Bootstrap(500, seed=3).counts(7), counts)


def test_the_bootstrap_of_two_images_has_its_closed_form_distribution():
    # Means of two draws from {0, 1}: 0, 0.5, 1 with chances 1/4, 1/2, 1/4.
    means = mean_samples(np.array([0.0, 1.0]), resample_counts(2, 8000, seed=0))
    shares = [np.mean(means == v) for v in (0.0, 0.5, 1.0)]
    assert shares == pytest.approx([0.25, 0.5, 0.25], abs=0.025)  # > 4 s.e. of each share


def test_the_bootstrap_of_a_mean_has_the_plug_in_variance():
    values = np.random.default_rng(0).uniform(0, 1, 60)
    samples = mean_samples(values, resample_counts(60, 10000, seed=1))
    sigma = np.sqrt(np.mean((values - values.mean()) ** 2) / len(values))  # closed form
    assert samples.mean() == pytest.approx(values.mean(), abs=4 * sigma / 100)
    assert samples.std() == pytest.approx(sigma, rel=0.04)
    interval = Bootstrap(10000, seed=1).interval(samples)
    half = 1.959964 * sigma  # the normal interval the percentile one approaches
    assert interval.low == pytest.approx(values.mean() - half, abs=0.1 * half)
    assert interval.high == pytest.approx(values.mean() + half, abs=0.1 * half)


def _detections(rng, images: int):
    """Random ranked detections: per image its ground-truth count, pred_match (0.. true
    positive, -1 false positive, -2 ignored) and distinct scores sorted descending."""
    gt_counts = rng.integers(0, 4, images)
    gt_counts[0] = 0  # an image with nothing to find
    matches, scores = [], []
    for count in gt_counts:
        n = int(rng.integers(0, 6))
        m = np.where(rng.uniform(size=n) < 0.5, 0, -1)
        m[(m == 0).cumsum() > count] = -1  # no more true positives than ground truths
        m[rng.uniform(size=n) < 0.1] = -2
        matches.append(m)
        scores.append(np.sort(rng.uniform(size=n))[::-1])
    return gt_counts, matches, scores


def test_dataset_ap_of_a_resample_is_the_ap_of_its_expanded_image_list():
    rng = np.random.default_rng(5)
    gt_counts, matches, scores = _detections(rng, 12)
    counts = np.vstack([np.ones(12, int), resample_counts(12, 30, seed=2)])
    counts[-1] = 0
    counts[-1, 0] = 12  # only the image without ground truth, which has detections
    samples = dataset_ap_samples(gt_counts, matches, scores, counts)
    for row, value in zip(counts, samples, strict=True):
        expanded = [i for i in range(12) for _ in range(row[i])]
        expected = compute_ap_dataset(
            gt_counts[expanded], [matches[i] for i in expanded], [scores[i] for i in expanded]
        )[0]
        assert value == pytest.approx(expected, abs=1e-12)
    assert samples[-1] == (0.0 if (matches[0] != -2).any() else 1.0)


def _coco_pair(rng, images: int, ids=None):
    """A small COCO ground truth (2 categories, boxes) and detections around it (jittered
    matches and false positives, distinct scores), optionally with images copied: ``ids`` lists
    which original image each new image id shows."""
    ids = list(range(images)) if ids is None else ids
    base = [
        [(int(rng.integers(1, 3)), rng.uniform(0, 60, 2), rng.uniform(8, 30, 2)) for _ in range(k)]
        for k in rng.integers(0, 4, images)
    ]
    jitter = [[rng.normal(0, 3, 2) for _ in objects] for objects in base]
    extra = [rng.uniform(0, 60, (int(rng.integers(0, 3)), 4)) for _ in range(images)]
    scores = rng.permutation(1000)[: images * 10].reshape(images, 10) / 1000 + 0.0005
    gt, dt = {"images": [], "annotations": [], "categories": []}, []
    gt["categories"] = [{"id": c, "name": str(c)} for c in (1, 2)]
    for new_id, i in enumerate(ids):
        gt["images"].append({"id": new_id, "width": 100, "height": 100})
        for k, (c, xy, wh) in enumerate(base[i]):
            box = [*xy, *wh]
            gt["annotations"].append(
                {"id": len(gt["annotations"]) + 1, "image_id": new_id, "category_id": c,
                 "bbox": box, "area": float(wh[0] * wh[1]), "iscrowd": 0}
            )  # fmt: skip
            moved = [*(xy + jitter[i][k]), *wh]
            dt.append({"image_id": new_id, "category_id": c, "bbox": moved, "score": scores[i, k]})
        for k, (x, y, w, h) in enumerate(extra[i]):
            box = [x, y, 5 + w / 4, 5 + h / 4]
            dt.append({"image_id": new_id, "category_id": 1 + k % 2, "bbox": box,
                       "score": scores[i, 5 + k]})  # fmt: skip
    return gt, dt


def _cocoeval(gt_dict, dt_list):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(dt_list), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def test_coco_ap_of_a_resample_is_cocoeval_on_the_expanded_images():
    images = 8
    gt, dt = _coco_pair(np.random.default_rng(7), images)
    evaluator = _cocoeval(gt, dt)
    records = coco_records(evaluator, list(range(images)))
    row = np.array([2, 0, 1, 3, 0, 1, 0, 1])
    samples = coco_ap_samples(records, np.vstack([np.ones(images, int), row]))
    # All ones: COCOeval's own AP, AP50, AP75.
    for name, stat in zip(("AP", "AP50", "AP75"), evaluator.stats[:3], strict=True):
        assert samples[name][0] == pytest.approx(stat, abs=1e-12)
    # A resample: COCOeval on a ground truth and detections with those images copied.
    ids = [i for i in range(images) for _ in range(row[i])]
    copied = _cocoeval(*_coco_pair(np.random.default_rng(7), images, ids))
    for name, stat in zip(("AP", "AP50", "AP75"), copied.stats[:3], strict=True):
        assert samples[name][1] == pytest.approx(stat, abs=1e-12)


def test_coco_resamples_without_ground_truth_are_left_out():
    gt, dt = _coco_pair(np.random.default_rng(7), 3)
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] != 0]
    records = coco_records(_cocoeval(gt, dt), [0, 1, 2])
    samples = coco_ap_samples(records, np.array([[3, 0, 0], [1, 1, 1]]))
    assert np.isnan(samples["AP"][0]) and np.isfinite(samples["AP"][1])


def test_the_interval_covers_the_true_mean_about_95_percent_of_the_time():
    result = coverage(images=30, repetitions=200, bootstrap=Bootstrap(500))
    # 95% +- 3.5 binomial standard errors (1.5 points each at 200 repetitions).
    assert 0.95 - 3.5 * result.spread <= result.rate <= 0.99
    assert result.mean_width == pytest.approx(result.normal_width, rel=0.15)


def test_one_image_gives_a_zero_width_interval_at_its_value():
    bootstrap = Bootstrap(100)
    interval = bootstrap.interval(mean_samples(np.array([0.4]), bootstrap.counts(1)))
    assert interval.low == interval.high == pytest.approx(0.4)
    assert str(interval) == "[0.4000, 0.4000]"
    assert interval.as_dict() == {"ci_low": pytest.approx(0.4), "ci_high": pytest.approx(0.4)}


def test_zero_images_and_few_images_are_said():
    with pytest.raises(ValueError, match="no images to resample"):
        resample_counts(0, 10)
    with pytest.warns(UserWarning, match=r"bootstrap interval from 3 images is unreliable"):
        warn_if_few(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_few(5)


@pytest.mark.parametrize(
    "settings, needle",
    [
        ({"resamples": 0}, "bootstrap resamples '0': must be a whole number >= 1"),
        ({"resamples": "2.5"}, "bootstrap resamples '2.5': must be a whole number >= 1"),
        ({"confidence": 1.0}, "confidence 1.0: must be a number in (0, 1)"),
        ({"confidence": "ninety"}, "confidence 'ninety': must be a number in (0, 1)"),
        ({"seed": -1}, "bootstrap seed '-1': must be a whole number >= 0"),
    ],
)
def test_bad_settings_are_one_line_errors(settings, needle):
    with pytest.raises(ValueError) as error:
        Bootstrap(**settings)
    assert str(error.value).startswith(needle) and "\n" not in str(error.value)
