"""The tracker on generated clips: objects of known paths, detected in every frame they are
meant to be, in a shuffled order, with boxes, rounded rois and (optionally) elliptical masks.

Each test asserts per *object* (the generator knows which detection is which), so that a
tracker that hands out fresh ids, swaps them or drops tracks fails by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from mrcnn.tracking import (
    BoxIoU,
    ConstantVelocity,
    FrameTracks,
    Stationary,
    Tracker,
    TrackerSettings,
)
from mrcnn.tracking.motion import shifted_mask

H, W = 120, 160


@dataclass
class Mover:
    """An object whose top-left corner is ``start + velocity * t`` (y, x) at frame t."""

    start: tuple[float, float]
    velocity: tuple[float, float]
    size: tuple[int, int] = (20, 24)
    class_id: int = 1
    frames: range = range(0, 10**6)  # frames it is in the picture
    hidden: frozenset[int] = frozenset()  # frames it is in the picture but not detected
    scores: dict[int, float] = field(default_factory=dict)  # frame -> score (else 0.9)

    def box(self, t: int) -> np.ndarray:
        """float [4] (y1, x1, y2, x2) at frame t."""
        y, x = (s + v * t for s, v in zip(self.start, self.velocity, strict=True))
        return np.array([y, x, y + self.size[0], x + self.size[1]], dtype=np.float64)

    def detected(self, t: int) -> bool:
        return t in self.frames and t not in self.hidden


def ellipse(box: np.ndarray) -> np.ndarray:
    """bool [H, W]: the ellipse inscribed in the (y1, x1, y2, x2) box."""
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    cy, cx = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ry, rx = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def frame(movers: list[Mover], t: int, kind: str, rng: np.random.Generator):
    """(detect-style dict, owner of each detection) for frame t; kind is "masks" (boxes, rois
    and masks), "boxes" (boxes and rois, no masks) or "rois" (rounded rois only)."""
    owners = [i for i, m in enumerate(movers) if m.detected(t)]
    owners = [owners[i] for i in rng.permutation(len(owners))]
    boxes = np.array([movers[i].box(t) for i in owners], dtype=np.float64).reshape(-1, 4)
    detections = {
        "rois": np.round(boxes).astype(np.int32),
        "scores": np.array([movers[i].scores.get(t, 0.9) for i in owners], dtype=np.float32),
        "class_ids": np.array([movers[i].class_id for i in owners], dtype=np.int32),
    }
    if kind != "rois":
        detections["boxes"] = boxes[:, [1, 0, 3, 2]].astype(np.float32)
    if kind == "masks":
        masks = [ellipse(b) for b in boxes]
        detections["masks"] = np.stack(masks, axis=-1) if masks else np.zeros((H, W, 0), bool)
    return detections, owners


def run(
    movers: list[Mover], frames: int, tracker: Tracker | None = None, kind: str = "masks"
) -> tuple[list[FrameTracks], list[dict[int, int]]]:
    """Every frame's result, and per frame {object: id of its detection} (-1 included)."""
    tracker = tracker or Tracker()
    rng = np.random.default_rng(0)
    results, ids = [], []
    for t in range(frames):
        detections, owners = frame(movers, t, kind, rng)
        result = tracker.update(detections)
        results.append(result)
        ids.append({o: int(i) for o, i in zip(owners, result.track_ids, strict=True)})
    return results, ids


def ids_of(ids: list[dict[int, int]], obj: int, frames=None) -> list[int]:
    """The ids object ``obj``'s detections got, frame by frame (where it was detected)."""
    frames = range(len(ids)) if frames is None else frames
    return [ids[t][obj] for t in frames if obj in ids[t]]


KINDS = ["masks", "boxes", "rois"]


# ------------------------------------------------------------------------------------------------
# Ids hold still
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_ids_stay_the_same_over_a_straight_run(kind):
    movers = [
        Mover((10, 5), (1.0, 2.0)),
        Mover((80, 120), (-0.5, -2.5)),
        Mover((50, 60), (0.3, 0.0), class_id=2),
    ]
    _, ids = run(movers, 40, kind=kind)
    assert all(i == -1 for i in ids[0].values()), "min_hits=2: no id on the first frame"
    per_object = [set(ids_of(ids, o, range(1, 40))) for o in range(len(movers))]
    assert all(len(s) == 1 for s in per_object), per_object
    distinct = set().union(*per_object)
    # Reassigning ids every frame would give ~40 ids per object, not one.
    assert len(distinct) == len(movers) and -1 not in distinct
    assert distinct == {1, 2, 3}


@pytest.mark.parametrize("kind", ["masks", "boxes"])
def test_a_track_survives_an_occlusion_and_gets_its_id_back(kind):
    hidden = frozenset(range(15, 25))  # ten frames without a detection
    movers = [Mover((10, 5), (1.0, 2.0), hidden=hidden), Mover((90, 130), (0.0, -1.0))]
    results, ids = run(movers, 40, kind=kind)
    before, after = ids_of(ids, 0, range(1, 15)), ids_of(ids, 0, range(25, 40))
    assert set(before) == set(after) == {before[0]}
    for t in sorted(hidden):
        (lost,) = results[t].lost
        assert lost.track_id == before[0] and lost.lost_frames == t - 14
        # The lost box keeps moving where the object goes.
        np.testing.assert_allclose(lost.box, movers[0].box(t), atol=1.0)
    assert len({i for frame_ids in ids[1:] for i in frame_ids.values()}) == 2


@pytest.mark.parametrize(("gap", "same"), [(5, True), (6, False)])
def test_a_gap_longer_than_max_lost_frames_gives_a_new_id(gap, same):
    hidden = frozenset(range(10, 10 + gap))
    tracker = Tracker(TrackerSettings(max_lost_frames=5))
    _, ids = run([Mover((10, 5), (1.0, 2.0), hidden=hidden)], 30, tracker)
    old = set(ids_of(ids, 0, range(1, 10)))
    new = set(ids_of(ids, 0, range(11 + gap, 30)))  # one frame to confirm a new track
    assert len(old) == len(new) == 1
    assert (old == new) is same
    if not same:
        assert new == {2}, "a new track takes the next id, never the old one"


def crossing_pair() -> list[Mover]:
    """Two same-class objects running at each other along nearly the same line: their boxes
    overlap for five frames; at frame 11 each one's detection sits exactly where the *other*
    one was the frame before (the trap for a tracker that does not predict motion)."""
    return [Mover((50, 10), (0.0, 4.0)), Mover((52, 94), (0.0, -4.0))]


@pytest.mark.parametrize("kind", KINDS)
def test_ids_do_not_swap_when_two_objects_cross(kind):
    movers = crossing_pair()
    overlapping = [t for t in range(25) if _box_iou(movers[0].box(t), movers[1].box(t)) > 0.1]
    assert len(overlapping) >= 3, "the clip must make the boxes overlap for several frames"
    _, ids = run(movers, 25, kind=kind)
    first, second = set(ids_of(ids, 0, range(1, 25))), set(ids_of(ids, 1, range(1, 25)))
    assert first == {1} and second == {2}


@pytest.mark.parametrize("kind", KINDS)
def test_the_crossing_clip_swaps_ids_without_motion_prediction(kind):
    """The test above means something: predicting boxes where they were last seen swaps the
    ids at frame 11."""
    _, ids = run(crossing_pair(), 25, Tracker(motion=Stationary()), kind=kind)
    assert set(ids_of(ids, 0, range(1, 11))) == set(ids_of(ids, 1, range(11, 25))) == {1}
    assert set(ids_of(ids, 1, range(1, 11))) == set(ids_of(ids, 0, range(11, 25))) == {2}


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    from mrcnn.evaluation.overlaps import compute_overlaps

    return float(compute_overlaps(a[None], b[None])[0, 0])


# ------------------------------------------------------------------------------------------------
# ByteTrack's second pass, new tracks, classes
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["masks", "boxes"])
def test_the_low_score_pass_keeps_a_track_alive_through_a_score_dip(kind):
    dip = range(10, 20)
    movers = [Mover((10, 5), (1.0, 2.0), scores={t: 0.3 for t in dip})]
    results, ids = run(movers, 30, kind=kind)
    assert set(ids_of(ids, 0, range(1, 30))) == {1}
    for t in dip:
        assert results[t].lost == [], f"frame {t}: the 0.3 detection must continue the track"
        assert results[t].tracks[0].detection == 0 and results[t].tracks[0].score == pytest.approx(
            0.3
        )


def test_low_score_detections_never_start_tracks():
    movers = [Mover((10, 5), (1.0, 2.0), scores={t: 0.3 for t in range(20)})]
    results, ids = run(movers, 20)
    assert ids_of(ids, 0) == [-1] * 20 and all(r.tracks == [] for r in results)


def test_new_objects_get_new_ids_and_ids_are_never_reused():
    movers = [
        Mover((10, 5), (1.0, 2.0), frames=range(0, 10)),
        Mover((80, 120), (0.0, -2.0), frames=range(5, 40)),
        Mover((10, 5), (1.0, 2.0), frames=range(20, 40)),  # where the first one was
    ]
    results, ids = run(movers, 40, Tracker(TrackerSettings(max_lost_frames=3)))
    assert set(ids_of(ids, 0, range(1, 10))) == {1}
    assert set(ids_of(ids, 1, range(6, 40))) == {2}
    assert set(ids_of(ids, 2, range(21, 40))) == {3}
    assert [t.track_id for t in results[-1].tracks] == [2, 3]


def test_tentative_tracks_report_minus_one_until_min_hits():
    blip = Mover((90, 10), (0.0, 0.0), frames=range(3, 4))  # a one-frame false positive
    movers = [Mover((10, 5), (1.0, 2.0)), blip]
    _, ids = run(movers, 10, Tracker(TrackerSettings(min_hits=3)))
    assert ids_of(ids, 0) == [-1, -1] + [1] * 8
    assert ids_of(ids, 1) == [-1]
    _, ids = run(movers, 10, Tracker(TrackerSettings(min_hits=1)))
    assert ids_of(ids, 0) == [1] * 10 and ids_of(ids, 1) == [2]


@pytest.mark.parametrize(("class_aware", "same"), [(True, False), (False, True)])
def test_class_aware_matching(class_aware, same):
    """The same object, relabelled from frame 5 on: a new track only when classes count."""
    movers = [
        Mover((10, 5), (1.0, 2.0), frames=range(0, 5)),
        Mover((10, 5), (1.0, 2.0), class_id=2, frames=range(5, 10)),
    ]
    _, ids = run(movers, 10, Tracker(TrackerSettings(class_aware=class_aware, min_hits=1)))
    assert ids_of(ids, 0) == [1] * 5
    assert ids_of(ids, 1) == [1 if same else 2] * 5


def test_frames_without_detections_and_a_plugged_association():
    calls = []

    def box_iou(tracks, detections):
        calls.append((len(tracks), len(detections)))
        return BoxIoU()(tracks, detections)

    tracker = Tracker(association=box_iou, motion=ConstantVelocity(alpha=1.0))
    movers = [Mover((10, 5), (1.0, 2.0), hidden=frozenset({4}))]
    _, ids = run(movers, 8, tracker)
    assert ids_of(ids, 0) == [-1] + [1] * 6
    assert calls[4] == (1, 0) and len(calls) == 8


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------
def _good(n: int = 2, masks: bool = True) -> dict:
    detections, _ = frame(
        [Mover((10, 5), (0, 0)), Mover((60, 80), (0, 0))][:n],
        0,
        "masks" if masks else "boxes",
        np.random.default_rng(0),
    )
    return detections


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: [d.pop("rois"), d.pop("boxes")], "neither 'rois' nor 'boxes'"),
        (lambda d: d.update(boxes=d["boxes"][:, :3]), r"'boxes' has shape \(2, 3\)"),
        (lambda d: d.update(scores=d["scores"][:1]), "'scores' has shape .* there are 2 boxes"),
        (lambda d: d.pop("class_ids"), "no 'class_ids'"),
        (lambda d: d.update(masks=d["masks"][:, :, :1]), r"'masks' has shape \(120, 160, 1\)"),
        (lambda d: d.update(masks=d["masks"][:, :, 0]), "one mask per detection"),
        (lambda d: d.update(boxes=d["boxes"] * np.nan), "NaN or infinite"),
    ],
)
def test_bad_detections_raise_a_clear_value_error(change, message):
    detections = _good()
    change(detections)
    with pytest.raises(ValueError, match=message):
        Tracker().update(detections)


def test_not_a_dict_raises_value_error():
    with pytest.raises(ValueError, match="must be a dict, got list"):
        Tracker().update([_good()])


def test_masks_of_another_frame_size_raise_until_reset():
    tracker = Tracker()
    tracker.update(_good())
    tracker.update(_good(masks=False))  # box-only frames in between are fine
    smaller = _good()
    smaller["masks"] = smaller["masks"][:100]
    with pytest.raises(ValueError, match=r"masks are 100x160 .* earlier frames' were 120x160"):
        tracker.update(smaller)
    tracker.reset()
    assert tracker.update(smaller).frame == 0


def test_an_association_of_the_wrong_shape_raises():
    tracker = Tracker(association=lambda tracks, detections: np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"returned shape \(3, 3\), expected"):
        tracker.update(_good())


@pytest.mark.parametrize(
    "settings",
    [
        {"low_score": 0.6},
        {"high_score": 1.5},
        {"match_iou": 0.0},
        {"min_hits": 0},
        {"max_lost_frames": -1},
        {"min_hits": 1.5},
    ],
)
def test_bad_settings_raise(settings):
    with pytest.raises(ValueError, match="TrackerSettings: "):
        TrackerSettings(**settings)
    with pytest.raises(ValueError, match="alpha must be in"):
        ConstantVelocity(alpha=0.0)


def test_a_shifted_mask_leaves_the_frame_instead_of_wrapping():
    mask = np.zeros((4, 6), bool)
    mask[1:3, 4:6] = True
    moved = shifted_mask(mask, np.array([1.2, 1.4]))  # rounds to (1, 1)
    expected = np.zeros_like(mask)
    expected[2:4, 5] = True  # the right column left the frame; nothing wrapped to the left
    np.testing.assert_array_equal(moved, expected)
    back = shifted_mask(mask, np.array([-1.0, -4.0]))
    assert back[0:2, 0:2].all() and back.sum() == 4
    assert not shifted_mask(mask, np.array([0.0, 9.0])).any()


@pytest.mark.parametrize("shift", [(0.0, 0.0), (1.4, -2.6), (-3.0, 4.0), (0.0, 40.0)])
def test_a_track_keeps_its_mask_as_a_window_and_moves_it_like_the_full_mask(shift):
    """Tracks keep each mask inside its bounding window (MaskPatch): pasted moved into the
    frame, it equals the full-frame mask moved, also where it leaves the frame."""
    from mrcnn.evaluation.overlaps import mask_windows
    from mrcnn.tracking.motion import MaskPatch

    masks = np.zeros((12, 20, 3), bool)
    masks[2:6, 15:20, 0] = True  # at the right edge
    masks[0:3, 0:2, 1] = [[1, 0], [1, 1], [0, 1]]  # at the top-left corner, ragged
    windows = mask_windows(masks)
    for k in range(3):  # mask 2 is empty
        patch = MaskPatch.of(masks, k, windows[k])
        assert patch.pixels.size == masks[..., k].sum() + (k == 1) * 2  # its window only
        canvas = np.zeros((12, 20), bool)
        patch.paste_shifted(canvas, np.array(shift))
        np.testing.assert_array_equal(canvas, shifted_mask(masks[..., k], np.array(shift)))


def test_box_masks_and_empty_frames_are_accepted():
    """detect(..., mask_format="boxes") results, and a frame where nothing was found."""
    import torch

    from mrcnn.structures.masks import BoxMasks

    tracker = Tracker()
    for k in range(3):
        box = np.array([[20.0, 10.0, 60.0, 40.0]], np.float32) + 2 * k  # (x1, y1, x2, y2)
        masks = BoxMasks((H, W), torch.ones((1, 28, 28)), torch.from_numpy(box))
        result = tracker.update(
            {"boxes": box, "scores": np.array([0.9]), "class_ids": np.array([1]), "masks": masks}
        )
    assert result.track_ids.tolist() == [1] and result.track_ids.dtype == np.int64
    empty = {"rois": np.zeros((0, 4), np.int32), "scores": [], "class_ids": []}
    result = tracker.update({**empty, "masks": np.zeros((H, W, 0), bool)})
    assert result.track_ids.shape == (0,) and [t.track_id for t in result.lost] == [1]
    np.testing.assert_allclose(result.lost[0].box, [16, 26, 46, 66])  # moved on by (2, 2)
