"""Tracked detections of a video as files: MOT Challenge text, and JSON with RLE masks.

Both are written frame by frame while a video runs (:class:`MotWriter`,
:class:`TracksJsonWriter`: open, ``add(frame_index, result)`` per frame, ``close``), through
:func:`mrcnn.outputs.atomic_output`: the file appears under its name, complete, at ``close``;
an error or Ctrl-C before that leaves nothing (``abort``, or leaving a ``with`` block by an
exception). A ``result`` is a frame analyser's dict (:mod:`mrcnn.tracking.analysis`):
``MaskRCNN.detect``'s keys plus "track_ids" int64 [N] (-1: no track).

**MOT Challenge text** (``<stem>_tracks.txt``): one line per detection that has a track
(id >= 1), frames numbered from 1, boxes in pixels, left/top/width/height::

    frame,id,bb_left,bb_top,bb_width,bb_height,conf,-1,-1,-1
    1,3,412.50,80.25,61.00,97.75,0.9871,-1,-1,-1

**JSON** (``<stem>_tracks.json``): every detection, tracked or not (track_id -1), in COCO's
results format (:func:`mrcnn.evaluation.detections_to_coco`: bbox [x, y, w, h], score, RLE
segmentation with "counts" as str, category_id and category_name) with its "track_id";
``image_id`` is the frame number from 1, as in the MOT text::

    {"format": "mrcnn-tracks", "version": 1, <metadata: video, fps, width, height...>,
     "class_names": ["BG", ...], "detections": [{"image_id": 1, "track_id": 3, ...}, ...],
     "frames": 250}

:func:`read_mot` and :func:`read_tracks_json` read them back into per-frame arrays.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from mrcnn.evaluation import detections_to_coco
from mrcnn.outputs import atomic_output

__all__ = ["MotWriter", "TracksJsonWriter", "mot_lines", "read_mot", "read_tracks_json"]

#: The JSON file's "format" and "version".
JSON_FORMAT = "mrcnn-tracks"
JSON_VERSION = 1


def _text_sink(path: Path, inputs: Iterable) -> Iterator[None]:
    """A generator writing each text sent to it into ``path``'s temporary; sending None
    finishes the file (renamed into place), closing the generator drops it."""
    with atomic_output(path, inputs) as temporary, open(temporary, "w", encoding="utf-8") as out:
        while (text := (yield)) is not None:
            out.write(text)


class _StreamingWriter:
    """An output written piece by piece; complete under its name only after :meth:`close`."""

    def __init__(self, path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()):
        self.path = Path(path)
        self.frames = 0  # one past the largest frame index added
        self._state = "open"
        self._sink: Iterator | None = _text_sink(self.path, list(inputs))
        next(self._sink)  # opens the temporary: a path that cannot be written fails here
        self._write(self._opening())

    def _opening(self) -> str:
        return ""

    def _closing(self) -> str:
        return ""

    def _write(self, text: str) -> None:
        if self._sink is None:
            raise ValueError(f"{self.path} is {self._state}; open a new writer to write again")
        if text:
            try:
                self._sink.send(text)
            except BaseException:
                self._sink, self._state = None, "dropped after a failed write"
                raise

    def _frame(self, frame_index: int, result: dict) -> np.ndarray:
        """Check a frame's index and result; return its track ids, int64 [N]."""
        if int(frame_index) < 0:
            raise ValueError(f"{self.path}: frame index {frame_index} < 0; frames count from 0")
        ids = np.asarray(result.get("track_ids", ()), dtype=np.int64).reshape(-1)
        count = len(np.asarray(result["scores"]).reshape(-1))
        if len(ids) != count:
            raise ValueError(
                f"{self.path}: frame {frame_index} has {len(ids)} track ids for {count} "
                "detections; give the frame analyser's result (one id per detection, -1: none)"
            )
        self.frames = max(self.frames, int(frame_index) + 1)
        return ids

    def close(self) -> Path:
        """Finish the file: it is renamed into place, complete. Returns its path.

        Raises:
            ValueError: the writer was aborted, or a write failed (nothing was written).
        """
        if self._sink is not None:
            self._write(self._closing())
            sink, self._sink, self._state = self._sink, None, "closed"
            try:
                sink.send(None)
            except StopIteration:
                pass
        elif self._state != "closed":
            raise ValueError(f"{self.path} was not written: it is {self._state}")
        return self.path

    def abort(self) -> None:
        """Drop the unfinished file (its temporary is removed; nothing appears)."""
        if self._sink is not None:
            sink, self._sink, self._state = self._sink, None, "aborted"
            sink.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class MotWriter(_StreamingWriter):
    """MOT Challenge text, a line per tracked detection (see the module's notes).

    ``lines`` counts the lines written, ``track_ids`` holds the distinct ids written."""

    def __init__(self, path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()):
        self.lines = 0
        self.track_ids: set[int] = set()
        super().__init__(path, inputs)

    def add(self, frame_index: int, result: dict) -> int:
        """Write frame ``frame_index``'s (from 0) tracked detections; return how many."""
        ids = self._frame(frame_index, result)
        lines = mot_lines(frame_index, result, ids)
        self._write("".join(lines))
        self.lines += len(lines)
        self.track_ids.update(int(i) for i in ids if i >= 1)
        return len(lines)


def mot_lines(frame_index: int, result: dict, track_ids: np.ndarray | None = None) -> list[str]:
    """The MOT Challenge lines of one frame (``frame_index`` from 0; written from 1): one per
    detection with a track id >= 1, box from "boxes" (x1, y1, x2, y2) or else "rois"
    (y1, x1, y2, x2), conf = its score."""
    ids = np.asarray(result["track_ids"] if track_ids is None else track_ids).reshape(-1)
    boxes = _xyxy(result)
    scores = np.asarray(result["scores"], dtype=np.float64).reshape(-1)
    return [
        f"{int(frame_index) + 1},{int(i)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
        f"{score:.4f},-1,-1,-1\n"
        for i, (x1, y1, x2, y2), score in zip(ids, boxes.tolist(), scores.tolist(), strict=True)
        if i >= 1
    ]


def _xyxy(result: dict) -> np.ndarray:
    """float64 [N, 4] (x1, y1, x2, y2) of a result's "boxes", or of its "rois"."""
    if result.get("boxes") is not None:
        return np.asarray(result["boxes"], dtype=np.float64).reshape(-1, 4)
    return np.asarray(result["rois"], dtype=np.float64).reshape(-1, 4)[:, [1, 0, 3, 2]]


class TracksJsonWriter(_StreamingWriter):
    """JSON of every detection with its track id and RLE mask (see the module's notes).

    Args:
        path: the output file.
        class_names: names by class id (each entry's "category_name"), or None.
        metadata: more header fields, e.g. {"video": ..., "fps": ..., "width": ...,
            "height": ...}.
        inputs: files of the run the output must never replace.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        metadata: dict | None = None,
        inputs: Iterable[str | os.PathLike] = (),
    ) -> None:
        self.class_names = None if class_names is None else list(class_names)
        self.metadata = dict(metadata or {})
        self._separator = ""
        super().__init__(path, inputs)

    def _opening(self) -> str:
        header = {"format": JSON_FORMAT, "version": JSON_VERSION, **self.metadata}
        header["class_names"] = self.class_names
        return json.dumps(header)[:-1] + ', "detections": ['

    def _closing(self) -> str:
        return f'], "frames": {self.frames}}}\n'

    def add(self, frame_index: int, result: dict) -> int:
        """Write frame ``frame_index``'s (from 0) detections; return how many."""
        ids = self._frame(frame_index, result)
        entries = detections_to_coco(
            [result], [int(frame_index) + 1], class_names=self.class_names, decimals=3
        )
        for entry, track_id in zip(entries, ids.tolist(), strict=True):
            entry["track_id"] = int(track_id)
            self._write(self._separator + json.dumps(entry))
            self._separator = ",\n"
        return len(entries)


# ------------------------------------------------------------------------------------------------
# Reading them back
# ------------------------------------------------------------------------------------------------
def read_mot(path: str | os.PathLike, frames: int | None = None) -> list[dict]:
    """A MOT Challenge text file as per-frame arrays.

    Args:
        frames: the number of frames (trailing frames without a line are empty); default:
            the last frame with a line.
    Returns:
        one dict per frame (index 0 = MOT frame 1): "track_ids" int64 [N], "boxes" float64
        [N, 4] (x1, y1, x2, y2) and "scores" float64 [N] (the conf column), in file order.
    Raises:
        ValueError: a line that is not at least 7 comma-separated numbers, or a frame < 1 or
            past ``frames`` (the message names the line).
    """
    rows = _mot_rows(Path(path))
    count = int(rows[:, 0].max()) if len(rows) else 0
    count = count if frames is None else int(frames)
    if len(rows) and rows[:, 0].max() > count:
        raise ValueError(f"{path}: frame {int(rows[:, 0].max())} is past the {count} frames given")
    out = []
    for frame in range(1, count + 1):
        mine = rows[rows[:, 0] == frame]
        left, top, width, height = mine[:, 2:6].T
        out.append(
            {
                "track_ids": mine[:, 1].astype(np.int64),
                "boxes": np.stack([left, top, left + width, top + height], axis=1),
                "scores": mine[:, 6].copy(),
            }
        )
    return out


def _mot_rows(path: Path) -> np.ndarray:
    """float64 [L, 7]: frame, id, left, top, width, height, conf of each line."""
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                values = [float(v) for v in line.replace(" ", "").split(",")[:7]]
            except ValueError:
                values = []
            if len(values) < 7 or values[0] < 1 or values[0] != int(values[0]):
                raise ValueError(
                    f"{path}:{number}: not a MOT Challenge line (frame,id,bb_left,bb_top,"
                    f"bb_width,bb_height,conf,... with frames from 1): {line.strip()[:80]!r}"
                )
            rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 7)


def read_tracks_json(path: str | os.PathLike, masks: bool = True) -> tuple[dict, list[dict]]:
    """A tracks JSON file as (header, per-frame results).

    Returns:
        header: every top-level field but "detections" (format, version, class_names,
        frames, metadata); per frame (index 0 = image_id 1): "track_ids" int64 [N],
        "class_ids" int32 [N], "scores" float32 [N], "boxes" float32 [N, 4] (x1, y1, x2, y2)
        and "masks" bool [H, W, N] decoded from the RLEs, or "rles" (the RLE dicts) when
        ``masks`` is False.
    Raises:
        ValueError: not such a file (no "detections" list or "frames" count).
    """
    with open(path, encoding="utf-8") as stream:
        data = json.load(stream)
    if not isinstance(data, dict) or not isinstance(data.get("detections"), list):
        raise ValueError(f"{path}: not a tracks JSON file (no 'detections' list); see mrcnn detect")
    header = {k: v for k, v in data.items() if k != "detections"}
    by_frame: list[list[dict]] = [[] for _ in range(int(header.get("frames", 0)))]
    for entry in data["detections"]:
        frame = int(entry["image_id"]) - 1
        if not 0 <= frame < len(by_frame):
            raise ValueError(f"{path}: image_id {frame + 1} outside frames 1..{len(by_frame)}")
        by_frame[frame].append(entry)
    size = _mask_size(header, data["detections"])
    return header, [_frame_arrays(entries, masks, size) for entries in by_frame]


def _mask_size(header: dict, entries: list[dict]) -> tuple[int, int]:
    """(H, W) of the masks: the header's height and width, else the first RLE's size."""
    if "height" in header and "width" in header:
        return int(header["height"]), int(header["width"])
    sizes = [e["segmentation"]["size"] for e in entries if "segmentation" in e]
    return (int(sizes[0][0]), int(sizes[0][1])) if sizes else (0, 0)


def _frame_arrays(entries: list[dict], masks: bool, size: tuple[int, int]) -> dict:
    boxes = np.asarray([e["bbox"] for e in entries], dtype=np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    out = {
        "track_ids": np.asarray([e["track_id"] for e in entries], dtype=np.int64),
        "class_ids": np.asarray([e["category_id"] for e in entries], dtype=np.int32),
        "scores": np.asarray([e["score"] for e in entries], dtype=np.float32),
        "boxes": boxes,
    }
    rles = [e.get("segmentation") for e in entries]
    if not masks:
        out["rles"] = rles
        return out
    decoded = np.zeros((*size, len(entries)), dtype=bool)
    if entries and all(r is not None for r in rles):
        from pycocotools import mask as mask_utils

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools vs numpy 2
            decoded = mask_utils.decode(rles).astype(bool).reshape(*size, len(entries))
    out["masks"] = decoded
    return out
