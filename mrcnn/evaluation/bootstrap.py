"""Bootstrap confidence intervals of evaluation figures, by resampling images.

Each resample draws as many images as were evaluated, with replacement, and recomputes the
figure on that draw from what each image contributed; the model is not run again. A draw is
held as resample counts: ``counts[b, i]`` is how many times image ``i`` was drawn in resample
``b`` (int [B, N], each row summing to N), so every figure is a weighted recomputation:

- **mAP (mean of per-image APs)**: ``counts @ image_aps / N``.
- **Dataset AP** (:func:`mrcnn.evaluation.ap.compute_ap_dataset`): every detection weighted by
  its image's count, the ground truths to find likewise; see :func:`dataset_ap_samples`.
- **COCO AP, AP50, AP75**: pycocotools' accumulation (101 recall points, per category, then
  averaged) redone on ``COCOeval.evalImgs`` with the same weights; see :func:`coco_ap_samples`.

The interval is the percentile interval of the resampled figures (numpy's linear percentile
at (1 - confidence) / 2 and (1 + confidence) / 2). The draws depend only on the image count,
the number of resamples and the seed, so every figure of one evaluation is resampled with the
same draws, and a rerun gives the same intervals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mrcnn.evaluation.matching import IGNORED

#: Below this many images an interval says little; a warning says so.
FEW_IMAGES = 5
#: Elements of one [resamples, detections] block, to bound memory on large datasets.
_BLOCK = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A confidence interval [low, high] at level ``confidence`` (e.g. 0.95)."""

    low: float
    high: float
    confidence: float

    def __str__(self) -> str:
        return f"[{self.low:.4f}, {self.high:.4f}]"

    def as_dict(self) -> dict[str, float]:
        """``{"ci_low", "ci_high"}`` for JSON files (None for a figure not measurable)."""
        return {"ci_low": _json_float(self.low), "ci_high": _json_float(self.high)}


def _json_float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True)
class Bootstrap:
    """How to bootstrap: ``resamples`` draws of the images, the interval's ``confidence`` level
    and the random ``seed`` (same seed, same draws, same intervals).

    Raises:
        ValueError: resamples not a whole number >= 1, confidence not in (0, 1), or a seed
            that is not a whole number >= 0.
    """

    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "resamples", parse_resamples(self.resamples))
        object.__setattr__(self, "confidence", parse_confidence(self.confidence))
        object.__setattr__(self, "seed", parse_seed(self.seed))

    def counts(self, n_images: int) -> np.ndarray:
        """int [resamples, n_images]: how often each image is drawn in each resample."""
        return resample_counts(n_images, self.resamples, self.seed)

    def interval(self, samples: np.ndarray) -> Interval:
        """The percentile interval of the resampled figures ``samples`` float [resamples]
        (NaN entries, resamples where the figure cannot be measured, are left out)."""
        low, high = percentile_interval(samples, self.confidence)
        return Interval(low, high, self.confidence)

    def describe(self) -> dict:
        """The settings, for JSON files."""
        return {
            "resamples": self.resamples,
            "confidence": self.confidence,
            "seed": self.seed,
            "method": "percentile",
            "unit": "image",
        }


def _whole(value, name: str, low: int) -> int:
    text = str(value).strip()
    try:
        number = int(text)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < low:
        raise ValueError(f"{name} {text!r}: must be a whole number >= {low}")
    return number


def parse_resamples(value) -> int:
    """The number of resamples (``--bootstrap N``) as an int >= 1, else a one-line ValueError."""
    return _whole(value, "bootstrap resamples", 1)


def parse_seed(value) -> int:
    """A bootstrap seed as an int >= 0, else a one-line ValueError."""
    return _whole(value, "bootstrap seed", 0)


def parse_confidence(value) -> float:
    """A confidence level in (0, 1) (0.95 for 95%), else a one-line ValueError."""
    try:
        level = float(value)
    except (TypeError, ValueError):
        level = float("nan")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence {value!r}: must be a number in (0, 1), e.g. 0.95 for 95%")
    return level


def warn_if_few(n_images: int) -> None:
    """Warn (one line) that an interval from fewer than :data:`FEW_IMAGES` images is unreliable."""
    if n_images < FEW_IMAGES:
        warnings.warn(
            f"bootstrap interval from {n_images} image{'s' if n_images != 1 else ''} is "
            f"unreliable (resampling so few images cannot show how the figure varies); "
            "evaluate more images for a meaningful interval",
            stacklevel=2,
        )


def resample_counts(n_images: int, resamples: int, seed: int = 0) -> np.ndarray:
    """Draw ``resamples`` resamples of ``n_images`` images with replacement.

    Returns:
        int64 [resamples, n_images]: ``counts[b, i]`` is how many times image ``i`` is in
        resample ``b``; each row sums to ``n_images``.
    Raises:
        ValueError: no images.
    """
    if n_images < 1:
        raise ValueError("no images to resample: the bootstrap needs at least one image")
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_images, size=(resamples, n_images))
    flat = drawn + n_images * np.arange(resamples)[:, None]
    return np.bincount(flat.ravel(), minlength=resamples * n_images).reshape(resamples, -1)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """(low, high): the (1 - confidence) / 2 and (1 + confidence) / 2 percentiles of the finite
    entries of ``samples`` (NaN, NaN when none is finite)."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def mean_samples(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """float [B]: the mean of ``values`` float [N] (e.g. per-image APs) in each resample of
    ``counts`` int [B, N]."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return counts @ values / len(values)


def _blocks(resamples: int, width: int) -> list[slice]:
    """Slices of the resamples, each block at most about :data:`_BLOCK` elements wide."""
    step = max(1, _BLOCK // max(width, 1))
    return [slice(start, start + step) for start in range(0, resamples, step)]


def _reverse_cummax(values: np.ndarray) -> np.ndarray:
    """The precision envelope along the last axis: each value replaced by the largest at or
    after it."""
    return np.flip(np.maximum.accumulate(np.flip(values, -1), axis=-1), -1)


def dataset_ap_samples(
    gt_counts: np.ndarray,
    pred_matches: list[np.ndarray],
    pred_scores: list[np.ndarray],
    counts: np.ndarray,
) -> np.ndarray:
    """The dataset AP (:func:`mrcnn.evaluation.ap.compute_ap_dataset`) of each resample.

    Args:
        gt_counts: int [N] ground truths to find per image (crowd excluded).
        pred_matches: per image, int [P_i] ``pred_match`` (>= 0 true positive, -1 false
            positive, -2 ignored), as :class:`~mrcnn.evaluation.ap.APAccumulator` keeps them.
        pred_scores: per image, float [P_i] the scores in the same order.
        counts: int [B, N] resample counts (:func:`resample_counts`).
    Returns:
        float [B]. An image drawn k times counts k times: its detections k times (adjacent in
        the ranking, which gives the AP of the expanded list) and its ground truths k times.
        Row b of all ones gives ``compute_ap_dataset``'s AP.
    """
    image_of = np.concatenate(
        [np.full(len(np.asarray(m).reshape(-1)), i) for i, m in enumerate(pred_matches)]
        or [np.zeros(0, np.int64)]
    ).astype(np.int64)
    matches = np.concatenate([np.asarray(m).reshape(-1) for m in pred_matches] or [np.zeros(0)])
    scores = np.concatenate([np.asarray(s).reshape(-1) for s in pred_scores] or [np.zeros(0)])
    order = np.argsort(-scores, kind="stable")  # as compute_ap_dataset ranks them
    image_of, matches = image_of[order], matches[order]
    found, counted = matches >= 0, matches != IGNORED
    gt_total = counts @ np.asarray(gt_counts, dtype=np.float64)
    out = np.empty(len(counts))
    for block in _blocks(len(counts), len(order)):
        weights = counts[block][:, image_of].astype(np.float64)
        hits = weights * found
        ranked = np.cumsum(weights * counted, axis=1)
        precision = np.divide(
            np.cumsum(hits, axis=1), ranked, out=np.zeros_like(ranked), where=ranked > 0
        )
        total = gt_total[block]
        ap = (hits * _reverse_cummax(precision)).sum(axis=1) / np.maximum(total, 1.0)
        predicted = ranked[:, -1] > 0 if ranked.shape[1] else np.zeros(len(total), bool)
        # No ground truth in the resample: 1.0 without predictions, 0.0 with (ap_from_matches).
        out[block] = np.where(total > 0, ap, np.where(predicted, 0.0, 1.0))
    return out


@dataclass
class CocoRecords:
    """What each image contributed to COCOeval's AP (area "all", the largest maxDets), per
    category, in the order pycocotools accumulates it.

    ``categories[k]`` holds ``image_of`` int [D] (the image index in the caller's order),
    ``tp`` and ``fp`` bool [T, D] (ignored detections are neither), ranked by score as
    ``COCOeval.accumulate`` ranks them, and ``gt`` float [N] the non-ignored ground truths of
    each image. ``iou_thresholds`` float [T] and ``recall_thresholds`` float [R] are COCOeval's.
    """

    categories: list[dict[str, np.ndarray]]
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray


def coco_records(evaluator, image_ids: list) -> CocoRecords:
    """The per-image records of a ``COCOeval`` after ``evaluate()``.

    Args:
        evaluator: a pycocotools ``COCOeval`` whose ``evaluate`` has run (``useCats`` on).
        image_ids: the COCO image ids in the caller's order (the resample counts' columns).
    """
    params = evaluator._paramsEval
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    images, areas, max_det = len(params.imgIds), len(params.areaRng), params.maxDets[-1]
    categories = []
    for k in range(len(params.catIds)):
        entries = [evaluator.evalImgs[k * areas * images + i] for i in range(images)]
        entries = [e for e in entries if e is not None]
        gt = np.zeros(len(image_ids))
        for e in entries:
            gt[position[e["image_id"]]] += np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
        scores = np.concatenate([e["dtScores"][:max_det] for e in entries] or [np.zeros(0)])
        order = np.argsort(-scores, kind="mergesort")  # COCOeval.accumulate's ranking
        image_of = np.concatenate(
            [np.full(len(e["dtScores"][:max_det]), position[e["image_id"]]) for e in entries]
            or [np.zeros(0)]
        ).astype(np.int64)[order]
        count = len(params.iouThrs)
        matched = _stacked([e["dtMatches"][:, :max_det] for e in entries], count)[:, order]
        ignored = _stacked([e["dtIgnore"][:, :max_det] for e in entries], count)[:, order]
        tp = (matched != 0) & ~(ignored != 0)
        fp = (matched == 0) & ~(ignored != 0)
        categories.append({"image_of": image_of, "tp": tp, "fp": fp, "gt": gt})
    return CocoRecords(
        categories, np.asarray(params.iouThrs, float), np.asarray(params.recThrs, float)
    )


def _stacked(arrays: list[np.ndarray], rows: int) -> np.ndarray:
    return np.concatenate(arrays, axis=1) if arrays else np.zeros((rows, 0))


def coco_ap_samples(records: CocoRecords, counts: np.ndarray) -> dict[str, np.ndarray]:
    """COCO's AP, AP50 and AP75 (area all, 100 detections) of each resample.

    Args:
        records: from :func:`coco_records`.
        counts: int [B, N] resample counts over the images of ``records``.
    Returns:
        {"AP", "AP50", "AP75"}: float [B] each; NaN in a resample where no category has a
        ground truth (COCOeval's -1). A row of all ones gives COCOeval's own figures.
    """
    per_category = [_coco_category_samples(c, records, counts) for c in records.categories]
    thresholds = records.iou_thresholds
    if not per_category:
        nan = np.full(len(counts), np.nan)
        return {"AP": nan, "AP50": nan.copy(), "AP75": nan.copy()}
    stacked = np.stack(per_category)  # [K, B, T], NaN where the category has no ground truth
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples stay NaN
        out = {"AP": np.nanmean(stacked.mean(axis=2), axis=0)}
        for name, iou in (("AP50", 0.5), ("AP75", 0.75)):
            t = np.flatnonzero(np.isclose(thresholds, iou))
            out[name] = np.nanmean(stacked[:, :, t[0]], axis=0) if len(t) else np.nan * out["AP"]
    return out


def _coco_category_samples(category: dict, records: CocoRecords, counts: np.ndarray) -> np.ndarray:
    """float [B, T]: one category's precision averaged over the recall thresholds, per
    resample and IoU threshold (NaN where the resample has none of its ground truths).

    Redoes ``COCOeval.accumulate`` with weights: ``rc = tp / npig``, ``pr = tp / (tp + fp +
    eps)``, the precision envelope, and at each recall threshold r the envelope at the first
    rank whose recall reaches r (0 past the last). The thresholds a rank d serves are those in
    (rc[d - 1], rc[d]], so the sum is over ranks of (how many thresholds) x envelope."""
    recall_thresholds = records.recall_thresholds
    image_of, tp, fp = category["image_of"], category["tp"], category["fp"]
    npig = counts @ category["gt"]
    out = np.full((len(counts), len(records.iou_thresholds)), np.nan)
    for block in _blocks(len(counts), tp.size):
        weights = counts[block][:, None, image_of].astype(np.float64)  # [b, 1, D]
        tp_sum = np.cumsum(weights * tp, axis=2)
        fp_sum = np.cumsum(weights * fp, axis=2)
        found = npig[block] > 0
        recall = tp_sum / np.where(found, npig[block], 1.0)[:, None, None]
        precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
        served = np.diff(
            np.searchsorted(recall_thresholds, recall, side="right"), axis=2, prepend=0
        )
        mean = (served * _reverse_cummax(precision)).sum(axis=2) / len(recall_thresholds)
        out[block] = np.where(found[:, None], mean, np.nan)
    return out
