"""Which photos to label next (``mrcnn rank``): unlabelled photos ordered by how much labelling
each should help, with the reasons, as a CSV.

The rule (also in docs/training.md, "Check, and choose what to label next"):

1. Each photo's signals (:mod:`mrcnn.labelling.signals`, each in [0, 1]) are combined into its
   **uncertainty** ``u = sum(WEIGHTS[s] * s)`` (the weights sum to 1).
2. Its pooled features are centred on the mean of all the photos' features (the unlabelled
   ones and, with ``--labelled``, the labelled ones) and compared by cosine: the **distance**
   of two photos is ``(1 - cos) / 2``, in [0, 1] (0: the same features).
3. Greedy order: the next photo is the one with the highest ``score = (1 - DIVERSITY_WEIGHT) *
   u + DIVERSITY_WEIGHT * d``, where ``d`` (its **diversity**) is its distance to the nearest
   photo among the labelled ones and those already ranked above it (1 while there are none).
   A photo like one already labelled, or like one ranked above it, so falls behind a photo as
   doubtful but unlike them. Scores never rise down the list; ties keep the input order.
"""

from __future__ import annotations

import csv
import filecmp
import glob
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrcnn.labelling.images import each_image, read_and_run
from mrcnn.labelling.signals import Signals, network_pass, pooled_features, signals_of
from mrcnn.outputs import free_output_path, reserved_output, write_output

#: Weight of each signal in the uncertainty (they sum to 1).
WEIGHTS = {"detection": 0.35, "entropy": 0.15, "mask": 0.2, "flip": 0.3}
#: Weight of the diversity in the score (the uncertainty has 1 - this).
DIVERSITY_WEIGHT = 0.3
#: The CSV's columns.
COLUMNS = (
    "rank",
    "file",
    "score",
    "detection_uncertainty",
    "class_entropy",
    "mask_uncertainty",
    "flip_disagreement",
    "diversity",
    "detections",
    "reason",
)
#: Signal -> its CSV column.
SIGNAL_COLUMNS = {
    "detection": "detection_uncertainty",
    "entropy": "class_entropy",
    "mask": "mask_uncertainty",
    "flip": "flip_disagreement",
}


def uncertainty(signals: Signals, weights: dict[str, float] = WEIGHTS) -> float:
    """The weighted sum of a photo's signals, in [0, 1]."""
    return float(sum(w * getattr(signals, name) for name, w in weights.items()))


@dataclass
class Pick:
    """One place of the order: ``index`` into the photos ranked, its ``score``, ``uncertainty``
    and ``diversity`` when picked, and the nearest photo then (``nearest``: an index into the
    labelled features when ``near_labelled``, else into the photos; -1: none)."""

    index: int
    score: float
    uncertainty: float
    diversity: float
    nearest: int = -1
    near_labelled: bool = False


def _unit_rows(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def greedy_order(
    uncertainties: Sequence[float],
    features: np.ndarray,
    labelled: np.ndarray | None = None,
    diversity_weight: float = DIVERSITY_WEIGHT,
) -> list[Pick]:
    """The order of the module docstring's rule.

    Args:
        uncertainties: float [N] each photo's uncertainty.
        features: float [N, F] each photo's pooled features.
        labelled: float [L, F] the labelled photos' features (None or L = 0: none).
    Returns:
        one :class:`Pick` per photo, best first.
    """
    u = np.asarray(uncertainties, dtype=np.float64).reshape(-1)
    count = len(u)
    if count == 0:
        return []
    features = np.asarray(features, dtype=np.float64).reshape(count, -1)
    reference = np.zeros((0, features.shape[1])) if labelled is None else np.asarray(labelled)
    reference = reference.astype(np.float64).reshape(-1, features.shape[1])
    centre = np.concatenate([features, reference]).mean(axis=0)
    mine, theirs = _unit_rows(features - centre), _unit_rows(reference - centre)
    nearest = np.ones(count)  # distance to the nearest labelled or picked photo
    source = np.full(count, -1)
    near_labelled = np.zeros(count, dtype=bool)
    if len(theirs):
        distances = np.clip((1.0 - mine @ theirs.T) / 2.0, 0.0, 1.0)
        nearest, source = distances.min(axis=1), distances.argmin(axis=1)
        near_labelled[:] = True
    left = np.ones(count, dtype=bool)
    picks: list[Pick] = []
    for _ in range(count):
        score = (1.0 - diversity_weight) * u + diversity_weight * nearest
        best = int(np.flatnonzero(left)[np.argmax(score[left])])
        picks.append(
            Pick(best, score[best], u[best], nearest[best], source[best], near_labelled[best])
        )
        left[best] = False
        to_best = np.clip((1.0 - mine @ mine[best]) / 2.0, 0.0, 1.0)
        closer = left & (to_best < nearest)
        nearest[closer], source[closer], near_labelled[closer] = to_best[closer], best, False
    return picks


# ------------------------------------------------------------------------------------------------
# Reasons
# ------------------------------------------------------------------------------------------------
#: A signal at least this high is named in the reason.
NOTABLE = 0.5
#: A diversity at most this is named as a likeness.
ALIKE = 0.05


def reason(
    signals: Signals,
    pick: Pick,
    class_names: Sequence[str] = (),
    names: Sequence[str] = (),
    labelled_names: Sequence[str] = (),
) -> str:
    """The reason in words: the notable signals, largest weighted part first, and the diversity.

    Args:
        class_names: by class id ("BG" first); names, labelled_names: of the photos ranked and
            of the labelled ones, by index (for "like NAME").
    """
    parts = [
        (WEIGHTS[name] * getattr(signals, name), name)
        for name in WEIGHTS
        if getattr(signals, name) >= NOTABLE
    ]
    words = [_signal_words(name, signals, class_names) for _, name in sorted(parts, reverse=True)]
    if not words:
        words.append("the model is fairly sure of this photo")
    words.append(_diversity_words(pick, names, labelled_names))
    return "; ".join(w for w in words if w)


def _signal_words(name: str, signals: Signals, class_names: Sequence[str]) -> str:
    if name == "detection":
        score = signals.doubtful_score
        side = "just below" if score < signals.threshold else "near"
        return f"a detection scored {score:.2f}, {side} the {signals.threshold:.2f} threshold"
    if name == "entropy":
        if signals.confused is None:
            return f"unsure of a class ({signals.entropy:.2f})"
        a, b = (_class_name(class_names, c) for c in signals.confused)
        return f"unsure whether {a} or {b} ({signals.entropy:.2f})"
    if name == "mask":
        return f"a mask with unsure edges ({signals.mask:.0%} of its pixels undecided)"
    return f"detections change when the photo is mirrored ({signals.flip:.2f})"


def _class_name(class_names: Sequence[str], class_id: int) -> str:
    return class_names[class_id] if 0 <= class_id < len(class_names) else f"class {class_id}"


def _diversity_words(pick: Pick, names: Sequence[str], labelled_names: Sequence[str]) -> str:
    if pick.nearest < 0:
        return ""
    pool = labelled_names if pick.near_labelled else names
    name = pool[pick.nearest] if pick.nearest < len(pool) else f"#{pick.nearest}"
    where = "a labelled photo" if pick.near_labelled else "a photo ranked above it"
    if pick.diversity <= ALIKE:
        return f"much like {where} ({name}), so less new"
    others = "the labelled photos and those above it" if labelled_names else "those above it"
    return f"unlike {others} (nearest: {name}, {pick.diversity:.2f})"


# ------------------------------------------------------------------------------------------------
# Ranking a folder
# ------------------------------------------------------------------------------------------------
@dataclass
class Scored:
    """One photo: its signals, or why it was skipped."""

    path: Path
    signals: Signals | None = None
    error: str = ""


@dataclass
class Row:
    """One ranked photo, a row of the CSV."""

    rank: int
    path: Path
    pick: Pick
    signals: Signals
    reason: str

    def values(self) -> dict[str, object]:
        """The CSV's columns -> values."""
        values: dict[str, object] = {
            "rank": self.rank,
            "file": str(self.path),
            "score": f"{self.pick.score:.4f}",
            "diversity": f"{self.pick.diversity:.4f}",
            "detections": self.signals.detections,
            "reason": self.reason,
        }
        for name, column in SIGNAL_COLUMNS.items():
            values[column] = f"{getattr(self.signals, name):.4f}"
        return values


@dataclass
class Ranking:
    """What :func:`rank_images` made: the rows best first, and the photos skipped."""

    rows: list[Row] = field(default_factory=list)
    skipped: list[Scored] = field(default_factory=list)


def score_line(scored: Scored) -> str:
    """One line per photo as it is scored."""
    if scored.signals is None:
        return f"skipped {scored.path}: {scored.error}"
    s = scored.signals
    return (
        f"{scored.path.name}: {s.detections} detections; detection {s.detection:.2f}, "
        f"class {s.entropy:.2f}, mask {s.mask:.2f}, flip {s.flip:.2f}"
    )


def score_images(
    model,
    paths: Sequence[Path],
    *,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> list[Scored]:
    """The signals of each photo (one network pass over it and its mirror image); a photo that
    cannot be read or run is skipped with its error."""

    def one(path: Path) -> Scored:
        done = read_and_run(path, lambda image: signals_of(network_pass(model, image)))
        return Scored(path, error=done) if isinstance(done, str) else Scored(path, done[1])

    return each_image(paths, one, score_line, progress=progress, report=report)


def rank_images(
    model,
    paths: Sequence[Path],
    labelled: np.ndarray | None = None,
    class_names: Sequence[str] = (),
    labelled_names: Sequence[str] = (),
    *,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> Ranking:
    """Score the photos and order them by the module docstring's rule.

    Args:
        model: a :class:`~mrcnn.maskrcnn.MaskRCNN`.
        paths: the unlabelled photos.
        labelled: float [L, F] the labelled photos' features (:func:`labelled_features`).
        class_names: by class id ("BG" first), for the reasons.
    """
    scored = score_images(model, paths, progress=progress, report=report)
    done = [s for s in scored if s.signals is not None]
    ranking = Ranking(skipped=[s for s in scored if s.signals is None])
    if not done:
        return ranking
    features = np.stack([s.signals.feature for s in done])
    picks = greedy_order([uncertainty(s.signals) for s in done], features, labelled)
    names = [s.path.name for s in done]
    for place, pick in enumerate(picks, start=1):
        item = done[pick.index]
        why = reason(item.signals, pick, class_names, names, labelled_names)
        ranking.rows.append(Row(place, item.path, pick, item.signals, why))
    return ranking


def labelled_features(
    model, dataset, report: Callable[[str], None] | None = None
) -> tuple[np.ndarray, list[str]]:
    """(float [L, F] pooled features, names) of a dataset's images that load; each image
    that does not is reported (one line) and left out."""
    features, names = [], []
    for image_id in dataset.image_ids:
        info = dataset.image_info[image_id]
        name = Path(str(info.get("path") or f"image {image_id}")).name
        try:
            features.append(pooled_features(model, dataset.load_image(image_id)))
            names.append(name)
        except Exception as error:  # a user's loader may raise anything; one image is skipped
            if report is not None:
                report(f"skipped labelled {name}: {' '.join(str(error).split())}")
    width = len(features[0]) if features else 0
    return np.asarray(features, dtype=np.float32).reshape(-1, width), names


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------
def csv_text(rows: Sequence[Row]) -> str:
    """The CSV (header :data:`COLUMNS`, one row per ranked photo)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.values())
    return buffer.getvalue()


def write_csv(path: Path, rows: Sequence[Row], inputs: Sequence[Path] = ()) -> Path:
    """Write :func:`csv_text` to ``path`` atomically (never over one of ``inputs``)."""
    return write_output(path, csv_text(rows), inputs)


def copy_top(
    rows: Sequence[Row], count: int, folder: Path, inputs: Sequence[Path] = ()
) -> list[tuple[Path, Path]]:
    """Copy the first ``count`` ranked photos into ``folder`` (created when missing), each
    atomically; a name already there is never written over: the copy goes to the next free
    name (``NAME_1.jpg``). A photo already copied there (same bytes under its name or a
    ``NAME_k`` one, as a rerun finds it) is not copied again. Returns (photo, copy) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for row in rows[: max(0, int(count))]:
        earlier = earlier_copy(row.path, folder)
        if earlier is not None:
            copies.append((row.path, earlier))
            continue
        target = free_output_path(folder / row.path.name)  # reserved: no other run takes it
        with reserved_output(target):
            write_output(target, row.path.read_bytes(), inputs)
        copies.append((row.path, target))
    return copies


def earlier_copy(photo: Path, folder: Path) -> Path | None:
    """The file in ``folder`` named as ``photo`` (or ``NAME_k`` with its suffix) holding the
    same bytes, if there is one."""
    size = photo.stat().st_size
    named = [
        folder / photo.name,
        *sorted(folder.glob(f"{glob.escape(photo.stem)}_*{photo.suffix}")),
    ]
    for candidate in named:
        if candidate.is_file() and candidate.stat().st_size == size:
            if filecmp.cmp(candidate, photo, shallow=False):
                return candidate
    return None


def already_labelled(paths: Sequence[Path], dataset) -> tuple[list[Path], list[Path]]:
    """(the photos not among ``dataset``'s image files, those that are), compared by resolved
    path, so that a folder holding labelled and unlabelled photos ranks only the latter."""
    known = {
        os.path.realpath(str(info["path"]))
        for info in getattr(dataset, "image_info", [])
        if isinstance(info, dict) and info.get("path")
    }
    fresh = [p for p in paths if os.path.realpath(p) not in known]
    return fresh, [p for p in paths if os.path.realpath(p) in known]
