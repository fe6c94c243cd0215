"""Running a model over a dataset and measuring Matterport-style AP (per image and for the
whole dataset) at several IoU thresholds, keeping the detections in COCO's results format.

An image whose ``load_image`` or ``load_mask`` raises is left out with one warning line (its id,
path and error) and counted in :attr:`DatasetEvaluation.skipped`; the others are evaluated.
With a :class:`~mrcnn.evaluation.bootstrap.Bootstrap`, every figure of the table also gets a
confidence interval from resampling the evaluated images."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from mrcnn.datasets.failures import ImageFailure, call_loaders, warn_below_bars
from mrcnn.evaluation.ap import COCO_IOU_THRESHOLDS, APAccumulator
from mrcnn.evaluation.bootstrap import (
    Bootstrap,
    Interval,
    dataset_ap_samples,
    mean_samples,
    warn_if_few,
)
from mrcnn.evaluation.coco import coco_ids, detections_to_coco
from mrcnn.evaluation.matching import GroundTruth, Predictions

log = logging.getLogger(__name__)


@dataclass
class DatasetEvaluation:
    """What :func:`evaluate_dataset` measured.

    ``image_ids`` int [N] internal ids evaluated (those that loaded); ``skipped`` the
    :class:`~mrcnn.datasets.failures.ImageFailure` of each image that failed to load;
    ``iou_thresholds`` the requested thresholds;
    ``image_aps[t]`` float [N] per-image AP at threshold t (requested ones and COCO's ten);
    ``mean_ap[t]`` their mean (Matterport's mAP); ``dataset_ap[t]`` the AP of all predictions
    ranked together; ``coco_results`` the detections in COCO's results format.
    With a bootstrap, ``bootstrap`` holds its settings and ``intervals["mean_ap"]`` and
    ``intervals["dataset_ap"]`` map each row of the table (a threshold, or "0.50:0.95") to its
    :class:`~mrcnn.evaluation.bootstrap.Interval`.
    """

    image_ids: np.ndarray
    iou_thresholds: tuple[float, ...]
    image_aps: dict[float, np.ndarray]
    mean_ap: dict[float, float]
    dataset_ap: dict[float, float]
    use_masks: bool = True
    coco_results: list[dict] = field(default_factory=list)
    detections: int = 0
    skipped: list[ImageFailure] = field(default_factory=list)
    bootstrap: Bootstrap | None = None
    intervals: dict[str, dict[float | str, Interval]] = field(default_factory=dict)

    @property
    def map50(self) -> float:
        """Mean per-image AP at IoU 0.5."""
        return self.mean_ap[0.5]

    @property
    def map50_95(self) -> float:
        """Mean per-image AP averaged over IoU 0.50:0.95 (COCO's thresholds)."""
        return float(np.mean([self.mean_ap[t] for t in COCO_IOU_THRESHOLDS]))

    @property
    def dataset_ap50_95(self) -> float:
        """Dataset-level AP averaged over IoU 0.50:0.95."""
        return float(np.mean([self.dataset_ap[t] for t in COCO_IOU_THRESHOLDS]))

    def summary(self) -> list[str]:
        """Printable lines: per-image mAP and dataset AP at each requested threshold (each
        followed by its interval when bootstrapped)."""
        kind = "mask" if self.use_masks else "box"
        left_out = f"; skipped {len(self.skipped)} that failed to load" if self.skipped else ""
        first = f"{len(self.image_ids)} images, {self.detections} detections ({kind} IoU){left_out}"
        if self.bootstrap is None:
            header = f"{'IoU':>11}  {'mAP (mean per image)':>20}  {'AP (dataset)':>12}"
            return [first, header, *(self._row(t) for t in self._rows())]
        level = f"{self.bootstrap.confidence * 100:g}% interval"
        first += f"; {level}s from {self.bootstrap.resamples} resamples of the images"
        header = (
            f"{'IoU':>11}  {'mAP (mean per image)':>20}  {level:>18}  {'AP (dataset)':>12}  "
            f"{level:>18}"
        )
        return [first, header, *(self._row(t) for t in self._rows())]

    def _rows(self) -> list[float | str]:
        return [*self.iou_thresholds, "0.50:0.95"]

    def _row(self, row: float | str) -> str:
        label = row if isinstance(row, str) else f"{row:.2f}"
        mean, dataset = self._value("mean_ap", row), self._value("dataset_ap", row)
        if self.bootstrap is None:
            return f"{label:>11}  {mean:>20.4f}  {dataset:>12.4f}"
        mean_ci, dataset_ci = self.intervals["mean_ap"][row], self.intervals["dataset_ap"][row]
        return f"{label:>11}  {mean:>20.4f}  {mean_ci!s:>18}  {dataset:>12.4f}  {dataset_ci!s:>18}"

    def _value(self, figure: str, row: float | str) -> float:
        if row == "0.50:0.95":
            return self.map50_95 if figure == "mean_ap" else self.dataset_ap50_95
        return (self.mean_ap if figure == "mean_ap" else self.dataset_ap)[row]

    def metrics(
        self,
        coco: dict[str, dict[str, float]] | None = None,
        coco_intervals: dict[str, dict[str, Interval]] | None = None,
    ) -> dict:
        """The figures as a JSON-ready dict.

        Args:
            coco: {"bbox"/"segm": :func:`~mrcnn.evaluation.coco.coco_evaluate`'s stats}.
            coco_intervals: {"bbox"/"segm": {"AP", "AP50", "AP75"} -> Interval}.
        Returns:
            ``images``, ``detections``, ``iou`` ("mask" or "box"), ``skipped``, ``mean_ap``
            and ``dataset_ap`` ({row: {"value"}} with rows "0.50", ..., "0.50:0.95"), ``coco``
            ({iou type: {stat name: {"value"}}}, empty without COCO) and ``bootstrap`` (its
            settings, or None). Bootstrapped figures also have "ci_low" and "ci_high".
        """
        figures: dict[str, dict] = {"mean_ap": {}, "dataset_ap": {}}
        for figure, rows in figures.items():
            for row in self._rows():
                name = row if isinstance(row, str) else f"{row:.2f}"
                interval = self.intervals.get(figure, {}).get(row)
                rows[name] = _figure(self._value(figure, row), interval)
        coco_figures = {
            iou_type: {
                name: _figure(value, (coco_intervals or {}).get(iou_type, {}).get(name))
                for name, value in stats.items()
            }
            for iou_type, stats in (coco or {}).items()
        }
        return {
            "images": len(self.image_ids),
            "detections": self.detections,
            "iou": "mask" if self.use_masks else "box",
            "skipped": len(self.skipped),
            **figures,
            "coco": coco_figures,
            "bootstrap": None if self.bootstrap is None else self.bootstrap.describe(),
        }


def _figure(value: float, interval: Interval | None) -> dict:
    """{"value"} and, with an interval, "ci_low" and "ci_high"."""
    return {"value": float(value), **(interval.as_dict() if interval is not None else {})}


def evaluate_dataset(
    model,
    dataset,
    image_ids: Sequence[int] | np.ndarray | None = None,
    limit: int | None = None,
    iou_thresholds: Iterable[float] = (0.5,),
    *,
    use_masks: bool = True,
    progress: bool = True,
    coco_results: bool = True,
    bootstrap: Bootstrap | None = None,
) -> DatasetEvaluation:
    """Run ``model.detect`` over a dataset and measure Matterport-style AP.

    Args:
        model: a :class:`~mrcnn.model.MaskRCNN` (anything with ``detect(images)`` and
            ``config.IMAGES_PER_GPU`` works).
        dataset: a prepared :class:`~mrcnn.dataset.Dataset` with the model's classes.
        image_ids: internal ids to evaluate (default: all).
        limit: evaluate at most the first ``limit`` of them.
        iou_thresholds: thresholds to report; COCO's 0.50:0.95 are always measured too.
        use_masks: mask IoU (default) or box IoU (``"rois"`` against the masks' boxes).
        progress: show a tqdm progress bar.
        coco_results: keep the detections in COCO's results format (for :func:`coco_evaluate`
            and JSON files).
        bootstrap: also a confidence interval for every figure of the table, resampling the
            evaluated images (a warning when fewer than 5 images were evaluated).
    Returns:
        a :class:`DatasetEvaluation`. Crowd regions (negative class ids) are ignored as
        described in the module docstring; images that fail to load are left out (a warning
        each) and listed in its ``skipped``.
    Raises:
        ValueError: no image to evaluate, or none of them loaded.
    """
    ids = np.asarray(dataset.image_ids if image_ids is None else image_ids, dtype=np.int64)
    if limit:
        ids = ids[: int(limit)]
    if len(ids) == 0:
        raise ValueError("no images to evaluate: the dataset (or image_ids) is empty")
    requested = _checked_thresholds(iou_thresholds)
    thresholds = tuple(sorted(set(requested) | set(COCO_IOU_THRESHOLDS)))
    accumulator = APAccumulator(thresholds, use_masks=use_masks)
    done = _detect_and_accumulate(
        model, dataset, ids, accumulator, progress=progress, coco_results=coco_results
    )
    if not done.image_ids:
        raise ValueError(_none_loaded(done.skipped))
    image_aps = {t: accumulator.image_aps(t) for t in thresholds}
    evaluation = DatasetEvaluation(
        image_ids=np.asarray(done.image_ids, dtype=np.int64),
        iou_thresholds=requested,
        image_aps=image_aps,
        mean_ap={t: float(np.mean(v)) for t, v in image_aps.items()},
        dataset_ap={t: accumulator.dataset_ap(t) for t in thresholds},
        use_masks=use_masks,
        coco_results=done.coco_results,
        detections=done.detections,
        skipped=done.skipped,
    )
    return evaluation if bootstrap is None else _with_intervals(evaluation, accumulator, bootstrap)


def _with_intervals(
    evaluation: DatasetEvaluation, accumulator: APAccumulator, bootstrap: Bootstrap
) -> DatasetEvaluation:
    """``evaluation`` given the intervals of its table's figures: mean per-image AP and dataset
    AP at each requested threshold and over 0.50:0.95, all from the same resamples of the
    images (a warning when they are few)."""
    warn_if_few(len(evaluation.image_ids))
    requested = evaluation.iou_thresholds
    counts = bootstrap.counts(len(accumulator.gt_counts))
    gt_counts = np.asarray(accumulator.gt_counts)
    samples: dict[str, dict[float, np.ndarray]] = {"mean_ap": {}, "dataset_ap": {}}
    for t in sorted(set(requested) | set(COCO_IOU_THRESHOLDS)):
        samples["mean_ap"][t] = mean_samples(accumulator.image_aps(t), counts)
        matches = accumulator.pred_matches(t)
        samples["dataset_ap"][t] = dataset_ap_samples(
            gt_counts, matches, accumulator.scores, counts
        )
    intervals: dict[str, dict[float | str, Interval]] = {}
    for figure, by_threshold in samples.items():
        intervals[figure] = {t: bootstrap.interval(by_threshold[t]) for t in requested}
        coco_range = np.mean([by_threshold[t] for t in COCO_IOU_THRESHOLDS], axis=0)
        intervals[figure]["0.50:0.95"] = bootstrap.interval(coco_range)
    evaluation.bootstrap, evaluation.intervals = bootstrap, intervals
    return evaluation


def _none_loaded(failures: list[ImageFailure]) -> str:
    first = failures[0]
    return (
        f"none of the {len(failures)} images could be loaded, e.g. {first.describe()}; call "
        f"dataset.{first.method}({first.image_id}) yourself to see the traceback"
    )


def _checked_thresholds(iou_thresholds: Iterable[float]) -> tuple[float, ...]:
    """The thresholds as floats, each checked to be in (0, 1]."""
    requested = tuple(float(t) for t in iou_thresholds)
    for t in requested:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"IoU threshold {t} must be in (0, 1]")
    return requested


def _images_per_batch(model) -> int:
    """How many images one ``model.detect`` call takes (``config.IMAGES_PER_GPU``, at least 1;
    1 for a model without a config)."""
    return max(1, int(getattr(getattr(model, "config", None), "IMAGES_PER_GPU", 1) or 1))


@dataclass
class _Detected:
    """What :func:`_detect_and_accumulate` went through."""

    image_ids: list[int] = field(default_factory=list)
    coco_results: list[dict] = field(default_factory=list)
    detections: int = 0
    skipped: list[ImageFailure] = field(default_factory=list)


def _detect_and_accumulate(
    model,
    dataset,
    ids: np.ndarray,
    accumulator: APAccumulator,
    *,
    progress: bool,
    coco_results: bool,
) -> _Detected:
    """Detect on ``ids`` batch by batch, adding each image to ``accumulator``; images that fail
    to load are skipped with a warning.

    Returns:
        the ids evaluated, the detections in COCO's results format (or [] without
        ``coco_results``), how many detections there were, and the failed loads.
    """
    coco_image_ids, class_map = coco_ids(dataset, ids)
    coco_id_of = dict(zip(ids.tolist(), coco_image_ids, strict=True))
    done = _Detected()
    step = _images_per_batch(model)
    bar = tqdm(total=len(ids), desc="evaluating", unit="image", disable=not progress)
    try:
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            loaded = _load_chunk(dataset, chunk, done.skipped)
            results = model.detect([image for _, image, _ in loaded]) if loaded else []
            for (image_id, _, (gt_masks, gt_class_ids)), r in zip(loaded, results, strict=True):
                gt_boxes = dataset.extract_bboxes(gt_masks)
                accumulator.add_image(
                    GroundTruth(gt_boxes, gt_class_ids, gt_masks),
                    Predictions(r["rois"], r["class_ids"], r["scores"], r["masks"]),
                )
                done.image_ids.append(image_id)
                done.detections += len(r["class_ids"])
                if coco_results:
                    coco_id = [coco_id_of[image_id]]
                    done.coco_results += detections_to_coco([r], coco_id, class_map)
            bar.update(len(chunk))
    finally:
        bar.close()
    return done


def _load_chunk(dataset, chunk: np.ndarray, failures: list[ImageFailure]) -> list[tuple]:
    """(image id, image, (masks, class ids)) of the images of ``chunk`` that load; each one that
    does not is logged and added to ``failures``."""
    loaded = []
    for image_id in chunk.tolist():
        result = call_loaders(dataset, image_id)
        if isinstance(result, ImageFailure):
            warn_below_bars(log, f"{result.describe()}; skipped, not evaluated")
            failures.append(result)
        else:
            loaded.append((image_id, *result))
    return loaded
