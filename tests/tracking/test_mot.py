"""Track files: MOT Challenge text and JSON written frame by frame, atomically, read back, and
scored by the metrics library (TrackEval) reading our MOT text with its own reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrcnn.datasets.clips import make_clip
from mrcnn.evaluation import tracking_metrics
from mrcnn.tracking.mot import MotWriter, TracksJsonWriter, mot_lines, read_mot, read_tracks_json

H, W = 32, 48


def _result(boxes, ids, scores=None, class_ids=None) -> dict:
    """A frame analyser's result: boxes (x1, y1, x2, y2), box-shaped masks."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    masks = np.zeros((H, W, len(boxes)), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
        masks[y1:y2, x1:x2, k] = True
    n = len(boxes)
    return {
        "rois": np.round(boxes[:, [1, 0, 3, 2]]).astype(np.int32),
        "boxes": boxes,
        "class_ids": np.asarray(class_ids if class_ids is not None else [1] * n, np.int32),
        "scores": np.asarray(scores if scores is not None else [0.9] * n, np.float32),
        "masks": masks,
        "track_ids": np.asarray(ids, dtype=np.int64),
    }


FRAMES = [
    _result([[1.25, 2.5, 11.0, 12.75], [20, 5, 30, 25]], [1, -1], [0.98766, 0.3]),
    _result(np.zeros((0, 4)), []),
    _result([[2, 3, 12, 13], [21, 6, 31, 26], [40, 1, 47, 9]], [1, 2, 3], class_ids=[1, 2, 1]),
]


def test_mot_text_has_a_line_per_tracked_detection_and_reads_back(tmp_path):
    path = tmp_path / "clip_tracks.txt"
    with MotWriter(path) as writer:
        counts = [writer.add(t, r) for t, r in enumerate(FRAMES)]
        assert not path.exists()  # appears only when complete
    assert counts == [1, 0, 3] and writer.lines == 4 and writer.track_ids == {1, 2, 3}
    lines = path.read_text().splitlines()
    assert lines[0] == "1,1,1.25,2.50,9.75,10.25,0.9877,-1,-1,-1"
    assert [line.split(",")[:2] for line in lines[1:]] == [["3", "1"], ["3", "2"], ["3", "3"]]
    frames = read_mot(path, frames=5)
    assert len(frames) == 5 and [len(f["track_ids"]) for f in frames] == [1, 0, 3, 0, 0]
    np.testing.assert_allclose(frames[0]["boxes"], [[1.25, 2.5, 11.0, 12.75]])
    np.testing.assert_allclose(frames[2]["boxes"], FRAMES[2]["boxes"], atol=0.005)
    assert frames[2]["track_ids"].tolist() == [1, 2, 3] and frames[0]["scores"][0] == 0.9877
    assert len(read_mot(path)) == 3
    assert mot_lines(0, {"rois": [[2, 1, 4, 3]], "scores": [1.0], "track_ids": [7]}) == [
        "1,7,1.00,2.00,2.00,2.00,1.0000,-1,-1,-1\n"
    ]


def test_json_keeps_every_detection_with_its_track_id_and_mask(tmp_path):
    path = tmp_path / "clip_tracks.json"
    meta = {"video": "clip.mp4", "fps": 25.0, "width": W, "height": H}
    with TracksJsonWriter(path, ["BG", "cat", "dog"], meta) as writer:
        for t, r in enumerate(FRAMES):
            writer.add(t, r)
    data = json.loads(path.read_text())
    assert data["format"] == "mrcnn-tracks" and data["frames"] == 3 and data["fps"] == 25.0
    assert [d["track_id"] for d in data["detections"]] == [1, -1, 1, 2, 3]
    assert {d["image_id"] for d in data["detections"]} == {1, 3}
    assert data["detections"][3]["category_name"] == "dog"
    header, frames = read_tracks_json(path)
    assert header["class_names"] == ["BG", "cat", "dog"] and "detections" not in header
    assert len(frames) == 3 and frames[1]["masks"].shape == (H, W, 0)
    for got, want in zip(frames, FRAMES, strict=True):
        np.testing.assert_array_equal(got["masks"], want["masks"])
        np.testing.assert_array_equal(got["track_ids"], want["track_ids"])
        np.testing.assert_array_equal(got["class_ids"], want["class_ids"])
        np.testing.assert_allclose(got["boxes"], want["boxes"], atol=0.002)
    _, lean = read_tracks_json(path, masks=False)
    assert "masks" not in lean[0] and isinstance(lean[0]["rles"][0]["counts"], str)


def test_an_unfinished_file_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError, match="stop"):
        with MotWriter(tmp_path / "a.txt") as mot, TracksJsonWriter(tmp_path / "a.json") as js:
            mot.add(0, FRAMES[0])
            js.add(0, FRAMES[0])
            raise RuntimeError("stop")
    writer = MotWriter(tmp_path / "b.txt")
    writer.add(0, FRAMES[0])
    writer.abort()
    assert list(tmp_path.iterdir()) == []  # no output, no temporary
    with pytest.raises(ValueError, match="b.txt was not written: it is aborted"):
        writer.close()
    writer = MotWriter(tmp_path / "d.txt")
    with pytest.raises(TypeError):
        writer._write(123)  # a failing write (as a full disk would): the file is dropped
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="dropped after a failed write"):
        writer.close()
    writer = MotWriter(tmp_path / "c.txt")
    assert writer.close() == tmp_path / "c.txt" and (tmp_path / "c.txt").read_text() == ""
    with pytest.raises(ValueError, match="is closed"):
        writer.add(0, FRAMES[0])


def test_bad_input_is_named(tmp_path):
    with MotWriter(tmp_path / "a.txt") as writer:
        with pytest.raises(ValueError, match="frame 0 has 1 track ids for 2 detections"):
            writer.add(0, {**FRAMES[0], "track_ids": np.array([1])})
        with pytest.raises(ValueError, match="frame index -1"):
            writer.add(-1, FRAMES[0])
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,0,0,5,5,1,-1,-1,-1\n\n2,x,0,0,5,5\n")
    with pytest.raises(ValueError, match=r"bad.txt:3: not a MOT Challenge line"):
        read_mot(bad)
    bad.write_text("0,1,0,0,5,5,1,-1,-1,-1\n")
    with pytest.raises(ValueError, match="frames from 1"):
        read_mot(bad)
    bad.write_text("4,1,0,0,5,5,1,-1,-1,-1\n")
    with pytest.raises(ValueError, match="frame 4 is past the 2 frames"):
        read_mot(bad, frames=2)
    bad.write_text("[]")
    with pytest.raises(ValueError, match="not a tracks JSON file"):
        read_tracks_json(bad)


# ------------------------------------------------------------------------------------------------
# Through the metrics library
# ------------------------------------------------------------------------------------------------
def _write_mot(path, results) -> None:
    with MotWriter(path) as writer:
        for t, r in enumerate(results):
            writer.add(t, r)


def _swapped(clip, after: int) -> list[dict]:
    """The clip's ground truth with tracks 1 and 2 trading ids from frame ``after`` on."""
    out = []
    for t in range(len(clip)):
        r = dict(clip.ground_truth(t))
        ids = r["track_ids"].copy()
        if t >= after:
            ids = np.where(ids == 1, 2, np.where(ids == 2, 1, ids))
        r["track_ids"] = ids
        out.append(r)
    return out


@pytest.fixture(scope="module")
def trackeval():
    return pytest.importorskip(
        "trackeval",
        reason=f"the tracking metrics need trackeval: {tracking_metrics.TRACKEVAL_INSTALL}",
    )


def test_mot_text_round_trips_through_trackeval(tmp_path, trackeval):
    """Our MOT text, read by TrackEval's own MOT Challenge reader: ground truth against itself
    scores 1; with two ids swapped half-way IDF1 and MOTA drop and the switches are counted."""
    clip = make_clip("crossing", 0, frames=16)
    truth = [clip.ground_truth(t) for t in range(len(clip))]
    _write_mot(tmp_path / "gt.txt", truth)
    _write_mot(tmp_path / "same.txt", truth)
    _write_mot(tmp_path / "swapped.txt", _swapped(clip, after=8))
    same = tracking_metrics.mot_file_scores(tmp_path / "gt.txt", tmp_path / "same.txt", 16)
    assert same.idf1 == 1.0 and same.mota == 1.0 and same.id_switches == 0
    assert same.true_positives == sum(len(ids) for ids in clip.track_ids)
    swapped = tracking_metrics.mot_file_scores(tmp_path / "gt.txt", tmp_path / "swapped.txt", 16)
    assert swapped.id_switches == 2 and swapped.mota < 1.0 and swapped.idf1 < 0.9
    # the same numbers from our reader and the glue's box similarities
    gt = read_mot(tmp_path / "gt.txt", 16)
    predicted = read_mot(tmp_path / "swapped.txt", 16)
    ours = tracking_metrics.tracking_scores(
        [f["track_ids"] for f in gt],
        [f["track_ids"] for f in predicted],
        tracking_metrics.box_similarities(
            [f["boxes"][:, [1, 0, 3, 2]] for f in gt],
            [f["boxes"][:, [1, 0, 3, 2]] for f in predicted],
        ),
    )
    assert (ours.idf1, ours.mota, ours.id_switches) == pytest.approx(
        (swapped.idf1, swapped.mota, swapped.id_switches)
    )


def test_mask_scores_of_a_clip(trackeval):
    clip = make_clip("occlusion", 1, frames=20)
    similarities = tracking_metrics.mask_similarities(clip.masks, clip.masks)
    perfect = tracking_metrics.tracking_scores(clip.track_ids, clip.track_ids, similarities)
    assert perfect.idf1 == perfect.mota == 1.0
    renamed = [np.where(ids == 2, 9, ids) for ids in clip.track_ids]  # any id numbers do
    assert tracking_metrics.tracking_scores(clip.track_ids, renamed, similarities).idf1 == 1.0
    swapped = [r["track_ids"] for r in _swapped(clip, after=15)]
    bad = tracking_metrics.tracking_scores(clip.track_ids, swapped, similarities)
    assert bad.idf1 < 1.0 and bad.id_switches == 2
    empty = np.zeros(0, np.int64)  # frames with no ground truth, or no prediction
    gaps = tracking_metrics.tracking_scores(
        [*clip.track_ids, empty, empty],
        [*clip.track_ids, np.array([5]), empty],
        [*similarities, np.zeros((0, 1)), np.zeros((0, 0))],
    )
    assert gaps.false_positives == 1 and gaps.idf1 < 1.0
    untracked = [np.full(len(ids), -1) for ids in clip.track_ids]  # ids < 1 are left out
    none = tracking_metrics.tracking_scores(clip.track_ids, untracked, similarities)
    assert none.idf1 == 0.0 and none.misses == sum(len(ids) for ids in clip.track_ids)
    hidden = [ids == 2 for ids in clip.track_ids]  # track 2 counts neither way
    without = [ids[ids != 2] for ids in clip.track_ids]
    sims = [s[:, ids != 2] for s, ids in zip(similarities, clip.track_ids, strict=True)]
    for predicted, similarity in ((clip.track_ids, similarities), (without, sims)):
        scores = tracking_metrics.tracking_scores(
            clip.track_ids, predicted, similarity, ignored=hidden
        )
        assert scores.idf1 == scores.mota == 1.0 and scores.false_positives == 0
        assert scores.true_positives == sum(len(i) for i in without)
    both = tracking_metrics.combined_scores([perfect, bad])
    assert bad.idf1 < both.idf1 < 1.0 and both.id_switches == 2
    with pytest.raises(ValueError, match="1 frames of ground truth, 2 of predictions"):
        tracking_metrics.tracking_scores(clip.track_ids[:1], clip.track_ids[:2], similarities)


def test_a_missing_trackeval_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "trackeval", None)
    with pytest.raises(ImportError, match=r"pip install --no-deps trackeval==1\.3\.0"):
        tracking_metrics.tracking_scores([], [], [])
