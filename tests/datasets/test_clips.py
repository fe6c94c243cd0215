"""Generated video clips: deterministic, ground truth that matches the pixels drawn, hidden
objects absent, the cut where the clip says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mrcnn.datasets import clips
from mrcnn.datasets.clips import MIN_VISIBLE_PIXELS, PHOTO_CLASS_ID, Clip, make_clip, pan_zoom
from mrcnn.testing import photo_like_image


def _runs(present: list[bool]) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    runs, start = [], None
    for t, here in enumerate([*present, False]):
        if here and start is None:
            start = t
        elif not here and start is not None:
            runs.append((start, t - start))
            start = None
    return runs


def _colour_of(clip: Clip, t: int, k: int) -> np.ndarray:
    """The one colour of object k's visible pixels in frame t (asserts there is one)."""
    pixels = clip.frames[t][clip.masks[t][:, :, k]]
    assert (pixels == pixels[0]).all(), f"{clip.name} frame {t}: object {k} has mixed colours"
    return pixels[0]


@pytest.mark.parametrize("kind", sorted(clips.CLIP_KINDS))
def test_clips_are_deterministic_and_well_formed(kind):
    a, b = make_clip(kind, 3, frames=12), make_clip(kind, 3, frames=12)
    np.testing.assert_array_equal(a.frames, b.frames)
    for t in range(len(a)):
        np.testing.assert_array_equal(a.track_ids[t], b.track_ids[t])
        np.testing.assert_array_equal(a.masks[t], b.masks[t])
    assert not np.array_equal(a.frames, make_clip(kind, 4, frames=12).frames)
    assert a.frames.shape == (12, 128, 128, 3) and a.frames.dtype == np.uint8
    assert a.name == f"{kind}-3"
    for t in range(len(a)):
        n = len(a.track_ids[t])
        assert a.masks[t].shape == (128, 128, n) and a.masks[t].dtype == bool
        assert a.class_ids[t].shape == (n,) and set(a.class_ids[t]) <= {1, 2, 3}
        assert a.shifts[t].shape == (n, 2) and a.boxes[t].shape == (n, 4)
        assert (
            a.visibility[t].shape == (n,) and ((0 < a.visibility[t]) & (a.visibility[t] <= 1)).all()
        )
        assert len(set(a.track_ids[t].tolist())) == n and (a.track_ids[t] >= 1).all()
        assert (a.masks[t].sum(axis=(0, 1)) >= MIN_VISIBLE_PIXELS).all()
        assert not (a.masks[t].sum(axis=2) > 1).any(), "visible masks overlap"


@pytest.mark.parametrize("kind", ["crossing", "occlusion", "cut"])
def test_masks_are_the_pixels_drawn_in_one_colour_per_track(kind):
    """Every shape pixel belongs to one mask (but slivers under MIN_VISIBLE_PIXELS), each mask
    is one colour, and a track keeps its colour (the ids follow the objects)."""
    clip = make_clip(kind, 1)
    colours: dict[int, tuple] = {}
    for t in range(len(clip)):
        frame, masks = clip.frames[t], clip.masks[t]
        drawn = (frame != frame[0, 0]).any(axis=2)  # these clips keep the corners clear
        union = masks.any(axis=2)
        assert not (union & ~drawn).any()
        assert (drawn & ~union).sum() < MIN_VISIBLE_PIXELS * 3
        for k, track_id in enumerate(clip.track_ids[t].tolist()):
            colour = tuple(_colour_of(clip, t, k))
            assert colours.setdefault(track_id, colour) == colour, f"track {track_id}, frame {t}"


def test_boxes_move_by_the_true_shift_and_ground_truth_is_detect_shaped():
    clip = make_clip("crossing", 2)
    checked = 0
    for t in range(1, len(clip)):
        for k, track_id in enumerate(clip.track_ids[t].tolist()):
            before = np.flatnonzero(clip.track_ids[t - 1] == track_id)
            area = clip.masks[t][:, :, k].sum()
            if len(before) and clip.masks[t - 1][:, :, before[0]].sum() == area:
                dy, dx = clip.shifts[t][k]
                moved = clip.boxes[t - 1][before[0]] + np.array([dy, dx, dy, dx])
                np.testing.assert_array_equal(clip.boxes[t][k], moved)
                checked += 1
    assert checked > 40
    assert np.isnan(clip.shifts[0]).all()
    r = clip.ground_truth(5)
    assert r["boxes"].dtype == np.float32 and r["rois"].dtype == np.int32
    np.testing.assert_array_equal(r["boxes"], r["rois"][:, [1, 0, 3, 2]])
    assert r["masks"] is clip.masks[5] and (r["scores"] == 1).all()


@pytest.mark.parametrize("hidden_frames", [3, 6])
def test_occlusion_hides_track_2_fully_for_the_frames_asked(hidden_frames):
    for seed in range(3):
        clip = clips.occlusion(seed, hidden_frames=hidden_frames)
        present = [2 in ids for ids in clip.track_ids]
        runs = _runs(present)
        assert len(runs) == 2, f"seed {seed}: track 2 should be seen, hidden, seen: {runs}"
        gap_start = runs[0][0] + runs[0][1]
        gap = runs[1][0] - gap_start
        assert hidden_frames <= gap <= hidden_frames + 3
        for t in range(gap_start, gap_start + gap):
            assert {1, 3} <= set(clip.track_ids[t].tolist())  # occluder and bystander stay
        seen = [v[ids == 2] for v, ids in zip(clip.visibility, clip.track_ids, strict=True)]
        assert seen[0] == 1.0 and seen[gap_start - 1] < 0.5  # whole, then going behind
    with pytest.raises(ValueError, match="hidden_frames must be at least 1"):
        clips.occlusion(0, hidden_frames=0)


def test_enter_leave_objects_cross_the_border():
    entered = left = 0
    for seed in range(3):
        clip = clips.enter_leave(seed)
        for track_id in range(1, 4):
            present = [track_id in ids for ids in clip.track_ids]
            runs = _runs(present)
            assert len(runs) == 1 and runs[0][1] >= 8
            start, length = runs[0]
            entered += start > 0
            left += start + length < len(clip)
            k = int(np.flatnonzero(clip.track_ids[start] == track_id)[0])
            mask = clip.masks[start][:, :, k]
            border = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
            assert border or start == 0
    assert entered >= 4 and left >= 3


def test_cut_starts_a_new_scene_with_new_ids():
    clip = clips.cut(5)
    c = clip.cut_frame
    assert 15 <= c <= 25
    before = set(np.concatenate(clip.track_ids[:c]).tolist())
    after = set(np.concatenate(clip.track_ids[c:]).tolist())
    assert before and after and min(after) > max(before)
    assert not (clip.frames[c - 1][0, 0] == clip.frames[c][0, 0]).all()  # other background
    assert np.isnan(clip.shifts[c]).all() and not np.isnan(clip.shifts[c + 1]).any()
    assert clips.crossing(0).cut_frame is None


def test_pan_zoom_over_a_photo_with_its_objects():
    photo = photo_like_image(300, 400, seed=1)
    objects = np.zeros((300, 400, 1), dtype=bool)
    objects[120:200, 150:260, 0] = True  # an object of the photo, in the middle
    clip = pan_zoom(photo, 0, frames=10, photo_masks=objects)
    assert clip.frames.shape == (10, 128, 128, 3) and clip.kind == "pan_zoom"
    photo_id = max(np.concatenate(clip.track_ids).tolist())
    classes = {c for t in range(len(clip)) for c in clip.class_ids[t].tolist()}
    assert PHOTO_CLASS_ID in classes and classes <= {1, 2, 3, PHOTO_CLASS_ID}
    np.testing.assert_array_equal(clip.frames, pan_zoom(photo, 0, frames=10).frames)
    areas = [
        m[:, :, ids == photo_id].sum() for m, ids in zip(clip.masks, clip.track_ids, strict=True)
    ]
    assert areas[-1] > areas[0]  # the camera zooms in
    moving = [s for s in clip.shifts[1:] if len(s)]
    assert moving and not np.isnan(np.concatenate(moving)).all()
    with pytest.raises(ValueError, match="photo must be RGB"):
        pan_zoom(photo[:, :, 0], 0)
    with pytest.raises(ValueError, match="photo_masks"):
        pan_zoom(photo, 0, photo_masks=objects[:10])


def test_write_clip_writes_a_readable_video(tmp_path):
    clip = make_clip("crossing", 0, frames=6)
    for name in ("clip.mp4", "clip.avi"):
        path = clips.write_clip(clip, tmp_path / name, fps=5)
        capture = cv2.VideoCapture(str(path))
        frames = []
        while (got := capture.read())[0]:
            frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
        capture.release()
        assert len(frames) == 6 and frames[0].shape == (128, 128, 3)
        assert np.abs(frames[3].astype(int) - clip.frames[3]).mean() < 8  # lossy, close
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "clip.mp4"]


def test_unknown_kind_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown clip kind 'spiral'.*crossing"):
        make_clip("spiral", 0)
