"""The stabiliser: hysteresis, minimum age, holding through dropouts, motion-following mask
smoothing; each turned off by its setting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mrcnn.tracking import Tracker, TrackerSettings
from mrcnn.tracking.frame_motion import FrameFlow, shifted_soft
from mrcnn.tracking.stable import Stabiliser, StableSettings
from tests.helpers.moving_scenes import (
    Scene,
    ScriptedModel,
    Square,
    detection,
    mask_iou,
    scripted,
)


def run(images, model, settings: StableSettings, use_flow: bool = True) -> list[dict]:
    """The stabiliser's output per frame, on detections down to settings.off_score."""
    model.config.DETECTION_MIN_CONFIDENCE = settings.off_score
    settings_of_tracker = TrackerSettings(
        high_score=settings.on_score, low_score=settings.off_score, min_hits=1
    )
    tracker = Tracker(settings_of_tracker)
    stabiliser, flow = Stabiliser(settings), FrameFlow()
    shown = []
    for image in images:
        result = model.detect([image])[0]
        step = flow(image) if use_flow else None
        shown.append(stabiliser(result, tracker.update(result), step))
    return shown


def one_square(frames: int = 12, scores=None):
    return scripted(Scene([Square((30, 10), (0.5, 3.0))]), frames, scores)


def shown_frames(shown: list[dict]) -> list[int]:
    return [t for t, r in enumerate(shown) if len(r["track_ids"])]


def test_hysteresis_keeps_a_track_shown_through_a_score_dip():
    images, _, model = one_square(scores=lambda t, i: 0.5 if t in (5, 6) else 0.9)
    shown = run(images, model, StableSettings(on_score=0.7, off_score=0.3, sure_score=math.inf))
    assert shown_frames(shown) == list(range(1, 12))  # from its 2nd frame (min_age), no gap
    assert {int(r["track_ids"][0]) for r in shown[1:]} == {1}


def test_without_hysteresis_the_dip_switches_the_track_off():
    images, _, model = one_square(scores=lambda t, i: 0.5 if t in (5, 6) else 0.9)
    shown = run(images, model, StableSettings(on_score=0.7, off_score=0.7, hold_frames=0))
    assert 5 not in shown_frames(shown) and 6 not in shown_frames(shown)


def test_a_track_is_shown_from_min_age_and_a_one_frame_detection_never():
    images, _, model = one_square(scores=lambda t, i: 0.8 if t == 3 else 0.0)
    assert shown_frames(run(images, model, StableSettings(min_age=2))) == []
    images, _, model = one_square()
    assert shown_frames(run(images, model, StableSettings(min_age=3, sure_score=math.inf)))[0] == 2
    assert shown_frames(run(images, model, StableSettings(min_age=1)))[0] == 0


def test_a_sure_track_is_shown_at_once_unless_sure_score_is_off():
    images, _, model = one_square(scores=lambda t, i: 0.95 if t == 3 else 0.0)
    assert shown_frames(run(images, model, StableSettings(min_age=2))) == [3]  # 0.95 >= 0.85
    sure_off = StableSettings(min_age=2, sure_score=math.inf)
    assert shown_frames(run(images, model, sure_off)) == []
    images, _, model = one_square(scores=lambda t, i: 0.8)
    assert shown_frames(run(images, model, StableSettings(sure_score=0.75)))[0] == 0
    assert shown_frames(run(images, model, StableSettings()))[0] == 1


def test_a_one_frame_dropout_is_held_where_the_object_moved():
    images, truths, model = one_square(scores=lambda t, i: 0.0 if t == 6 else 0.9)
    shown = run(images, model, StableSettings(hold_frames=2))
    assert 6 in shown_frames(shown)
    assert mask_iou(shown[6]["masks"][:, :, 0], truths[6][:, :, 0]) > 0.8  # moved, not stale
    off = run(images, model, StableSettings(hold_frames=0))
    assert 6 not in shown_frames(off)


def test_a_lost_track_is_held_no_longer_than_hold_frames():
    images, _, model = one_square(scores=lambda t, i: 0.0 if t >= 6 else 0.9)
    held = StableSettings(hold_frames=2, sure_score=math.inf)
    assert shown_frames(run(images, model, held)) == list(range(1, 8))


def notched(masks: np.ndarray, t: int) -> np.ndarray:
    """The true masks with their last two pixel rows missing in every third frame (detector
    noise)."""
    noisy = masks.copy()
    if t % 3 == 1:
        ys = np.flatnonzero(noisy[:, :, 0].any(axis=1))
        noisy[ys[-2:], :, 0] = False
    return noisy


@pytest.mark.parametrize("use_flow", [True, False])
def test_smoothing_removes_one_frame_notches_and_follows_the_motion(use_flow):
    scene = Scene([Square((30, 10), (0.0, 2.0))])
    images, truths, _ = scripted(scene, 14)
    results = [detection(notched(m, t), [0.9]) for t, m in enumerate(truths)]
    model = ScriptedModel(images, results)
    shown = run(images, model, StableSettings(), use_flow=use_flow)
    for t in range(6, 14):  # once the memory holds
        assert mask_iou(shown[t]["masks"][:, :, 0], truths[t][:, :, 0]) > 0.95, t
    model = ScriptedModel(images, results)
    raw = run(images, model, StableSettings(mask_memory=0.0), use_flow=use_flow)
    assert min(mask_iou(raw[t]["masks"][:, :, 0], truths[t][:, :, 0]) for t in range(6, 14)) < 0.95


def test_soft_masks_move_by_sub_pixel_shifts_and_leave_the_frame():
    soft = np.zeros((10, 10), np.float32)
    soft[4:6, 4:6] = 1.0
    moved = shifted_soft(soft, np.array([0.0, 0.5]))
    assert moved[4, 4] == pytest.approx(0.5) and moved[4, 6] == pytest.approx(0.5)
    assert not shifted_soft(soft, np.array([0.0, 20.0])).any()


def test_detections_without_masks_and_bad_settings_raise():
    result = detection(np.ones((8, 8, 1), bool), [0.9])
    tracks = Tracker().update(result)
    with pytest.raises(ValueError, match="needs masks"):
        Stabiliser()({**result, "masks": None}, tracks)
    bad_settings = (
        dict(off_score=0.9, on_score=0.5),
        dict(min_age=0),
        dict(mask_memory=1.0),
        dict(sure_score=0.5),
    )
    for bad in bad_settings:
        with pytest.raises(ValueError, match="StableSettings"):
            StableSettings(**bad)
