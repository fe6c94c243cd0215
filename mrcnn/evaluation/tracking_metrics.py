"""Multi-object tracking scores (IDF1, MOTA, ID switches) through TrackEval's CLEAR and Identity
metrics.

TrackEval (``trackeval`` on PyPI, imported only when a score is asked for) is installed
without its dependencies: it declares ``opencv-python``, which would clash with this project's
``opencv-python-headless``, and everything else it needs (numpy, scipy, pycocotools) is here
already::

    pip install --no-deps trackeval==1.3.0

A sequence is given frame by frame: the ground truth's track ids, the prediction's track ids
(ids below 1 mean "no track" and are left out, as a MOT Challenge file leaves them out) and
the similarity of every (ground truth, prediction) pair, [G_t, P_t]: mask IoU
(:func:`mask_similarities`) or box IoU (:func:`box_similarities`). A pair counts as a match at
``threshold`` (0.5) or more. Classes are not looked at (MOT Challenge's single-class rule).
Ground truths may be marked *ignored* (e.g. mostly hidden objects): they count neither way,
and a prediction matching one is left out, as MOT Challenge does with its distractors.
:func:`mot_file_scores` scores two MOT Challenge text files with TrackEval's own reader.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrcnn.evaluation.overlaps import compute_overlaps, compute_overlaps_masks

#: The install line of the metrics library (its dependency list would replace our OpenCV).
TRACKEVAL_INSTALL = "pip install --no-deps trackeval==1.3.0"
#: Least similarity (IoU) of a match.
MATCH_IOU = 0.5


@dataclass(frozen=True)
class TrackingScores:
    """CLEAR MOT and identity scores of one sequence, or of several combined.

    ``idf1``, ``idp``, ``idr``: identity F1, precision and recall; ``mota``, ``motp``: CLEAR
    MOT accuracy and mean similarity of the matches; ``id_switches``, ``true_positives``,
    ``misses`` (false negatives), ``false_positives``, ``fragmentations``: counts over the
    sequence(s). ``counts`` keeps TrackEval's own fields, to combine sequences.
    """

    idf1: float
    idp: float
    idr: float
    mota: float
    motp: float
    id_switches: int
    true_positives: int
    misses: int
    false_positives: int
    fragmentations: int
    counts: dict = field(repr=False)

    @classmethod
    def from_trackeval(cls, clear: dict, identity: dict) -> TrackingScores:
        return cls(
            idf1=float(identity["IDF1"]),
            idp=float(identity["IDP"]),
            idr=float(identity["IDR"]),
            mota=float(clear["MOTA"]),
            motp=float(clear["MOTP"]),
            id_switches=int(clear["IDSW"]),
            true_positives=int(clear["CLR_TP"]),
            misses=int(clear["CLR_FN"]),
            false_positives=int(clear["CLR_FP"]),
            fragmentations=int(clear["Frag"]),
            counts={"clear": dict(clear), "identity": dict(identity)},
        )


def tracking_scores(
    gt_ids: Sequence[np.ndarray],
    predicted_ids: Sequence[np.ndarray],
    similarities: Sequence[np.ndarray],
    threshold: float = MATCH_IOU,
    ignored: Sequence[np.ndarray] | None = None,
) -> TrackingScores:
    """IDF1, MOTA, ID switches, ... of one sequence.

    Args:
        gt_ids: per frame, int [G_t] ground-truth track ids (>= 1, unique in a frame).
        predicted_ids: per frame, int [P_t] predicted track ids; those < 1 (no track) are left
            out with their similarity columns.
        similarities: per frame, float [G_t, P_t] in [0, 1] (e.g. mask IoU).
        threshold: least similarity of a match.
        ignored: per frame, bool [G_t]: ground truths that count neither way (default none).
    Raises:
        ValueError: lists of different lengths or a similarity of the wrong shape.
        ImportError: trackeval is not installed (the message says how to install it).
    """
    clear_metric, identity_metric = _metrics(threshold)
    data = sequence_data(gt_ids, predicted_ids, similarities, threshold, ignored)
    return TrackingScores.from_trackeval(
        clear_metric.eval_sequence(data), identity_metric.eval_sequence(data)
    )


def combined_scores(scores: Sequence[TrackingScores]) -> TrackingScores:
    """The scores of several sequences taken together (counts summed, then the ratios), as
    TrackEval combines the sequences of a benchmark."""
    if not scores:
        raise ValueError("combined_scores: no sequences to combine")
    clear_metric, identity_metric = _metrics(MATCH_IOU)
    clear = clear_metric.combine_sequences({k: s.counts["clear"] for k, s in enumerate(scores)})
    identity = identity_metric.combine_sequences(
        {k: s.counts["identity"] for k, s in enumerate(scores)}
    )
    return TrackingScores.from_trackeval(clear, identity)


def sequence_data(
    gt_ids: Sequence[np.ndarray],
    predicted_ids: Sequence[np.ndarray],
    similarities: Sequence[np.ndarray],
    threshold: float = MATCH_IOU,
    ignored: Sequence[np.ndarray] | None = None,
) -> dict:
    """TrackEval's per-sequence input: ids relabelled 0, 1, ... (gt and predictions apart),
    untracked predictions (id < 1) left out, ignored ground truths and the predictions they
    match (greedily, one to one, at ``threshold``) left out, counts of detections and ids."""
    if not len(gt_ids) == len(predicted_ids) == len(similarities):
        raise ValueError(
            f"tracking scores: {len(gt_ids)} frames of ground truth, {len(predicted_ids)} of "
            f"predictions and {len(similarities)} of similarities; give one of each per frame"
        )
    gts, predictions, scores = [], [], []
    for t, (gt, predicted, similarity) in enumerate(
        zip(gt_ids, predicted_ids, similarities, strict=True)
    ):
        gt = np.asarray(gt, dtype=np.int64).reshape(-1)
        predicted = np.asarray(predicted, dtype=np.int64).reshape(-1)
        similarity = np.asarray(similarity, dtype=np.float64)
        if similarity.size == 0:
            similarity = np.zeros((len(gt), len(predicted)))
        if similarity.shape != (len(gt), len(predicted)):
            raise ValueError(
                f"tracking scores: frame {t} has similarities {similarity.shape} for {len(gt)} "
                f"ground truths and {len(predicted)} predictions"
            )
        tracked = predicted >= 1
        kept = np.ones(len(gt), dtype=bool)
        if ignored is not None:
            kept = ~np.asarray(ignored[t], dtype=bool).reshape(len(gt))
            tracked &= ~_matched_columns(similarity, ~kept, threshold)
        gts.append(gt[kept])
        predictions.append(predicted[tracked])
        scores.append(similarity[np.ix_(kept, tracked)])
    gt_index, gts = _relabelled(gts)
    tracker_index, predictions = _relabelled(predictions)
    return {
        "num_timesteps": len(gts),
        "gt_ids": gts,
        "tracker_ids": predictions,
        "similarity_scores": scores,
        "num_gt_dets": sum(len(g) for g in gts),
        "num_tracker_dets": sum(len(p) for p in predictions),
        "num_gt_ids": len(gt_index),
        "num_tracker_ids": len(tracker_index),
    }


def _matched_columns(similarity: np.ndarray, rows: np.ndarray, threshold: float) -> np.ndarray:
    """bool [P]: the predictions that a greedy one-to-one matching (highest similarity first,
    at ``threshold`` or more) of all ground truths gives to the ``rows`` (bool [G])."""
    out = np.zeros(similarity.shape[1], dtype=bool)
    used_rows, used_columns = set(), set()
    order = np.argsort(-similarity, axis=None, kind="stable")
    for g, p in zip(*np.unravel_index(order, similarity.shape), strict=True):
        if similarity[g, p] < threshold:
            break
        if g not in used_rows and p not in used_columns:
            used_rows.add(g)
            used_columns.add(p)
            out[p] = rows[g]
    return out


def _relabelled(ids: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """(the distinct ids, sorted; each frame's ids as indexes into them)."""
    distinct = np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
    return distinct, [np.searchsorted(distinct, frame).astype(np.int64) for frame in ids]


def mask_similarities(
    gt_masks: Sequence[np.ndarray], predicted_masks: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Per frame, float [G_t, P_t] mask IoUs of bool [H, W, G_t] and [H, W, P_t] masks."""
    return [
        compute_overlaps_masks(g, p).astype(np.float64)
        for g, p in zip(gt_masks, predicted_masks, strict=True)
    ]


def box_similarities(
    gt_boxes: Sequence[np.ndarray], predicted_boxes: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Per frame, float [G_t, P_t] box IoUs of [G_t, 4] and [P_t, 4] boxes, both
    (y1, x1, y2, x2)."""
    return [
        compute_overlaps(g, p).astype(np.float64)
        for g, p in zip(gt_boxes, predicted_boxes, strict=True)
    ]


def mot_file_scores(
    gt_path: str | os.PathLike,
    predicted_path: str | os.PathLike,
    frames: int,
    threshold: float = MATCH_IOU,
) -> TrackingScores:
    """Scores of a MOT Challenge text file against a ground-truth one, both read by TrackEval's
    own MOT Challenge reader (box IoU; ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,...``,
    frames 1 to ``frames``; ground-truth lines with conf 0 are ignored, as in MOT's files).

    Raises:
        ValueError: ``predicted_path`` does not end in ``.txt`` (TrackEval's reader needs it),
            or TrackEval refused a file (its message).
    """
    gt_path, predicted_path = Path(gt_path), Path(predicted_path)
    if predicted_path.suffix != ".txt":
        raise ValueError(f"{predicted_path}: TrackEval reads MOT files named <sequence>.txt")
    trackeval = _trackeval()
    config = {
        "GT_FOLDER": str(gt_path.parent),
        "TRACKERS_FOLDER": str(predicted_path.parent),
        "TRACKERS_TO_EVAL": [""],
        "TRACKER_SUB_FOLDER": "",
        "SKIP_SPLIT_FOL": True,
        "SEQ_INFO": {predicted_path.stem: int(frames)},
        "GT_LOC_FORMAT": re.sub(r"([{}])", r"\1\1", str(gt_path)),  # no placeholders
        "DO_PREPROC": False,
        "PRINT_CONFIG": False,
    }
    try:
        dataset = trackeval.datasets.MotChallenge2DBox(config)
        raw = dataset.get_raw_seq_data("", predicted_path.stem)
        data = dataset.get_preprocessed_seq_data(raw, "pedestrian")
    except trackeval.utils.TrackEvalException as error:
        raise ValueError(f"TrackEval cannot read {gt_path} / {predicted_path}: {error}") from None
    clear_metric, identity_metric = _metrics(threshold)
    return TrackingScores.from_trackeval(
        clear_metric.eval_sequence(data), identity_metric.eval_sequence(data)
    )


def _metrics(threshold: float):
    """TrackEval's (CLEAR, Identity) metric objects at ``threshold``."""
    trackeval = _trackeval()
    config = {"THRESHOLD": float(threshold), "PRINT_CONFIG": False}
    return trackeval.metrics.CLEAR(dict(config)), trackeval.metrics.Identity(dict(config))


def _trackeval():
    """The trackeval package, imported on first use (quietly: it prints a line about an
    optional dataset reader it cannot import)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import trackeval
    except ImportError as error:
        raise ImportError(
            f"tracking scores need trackeval ({error}); install it with {TRACKEVAL_INSTALL} "
            "(--no-deps: it would replace opencv-python-headless with opencv-python)"
        ) from error
    return trackeval
