"""Keyframes: masks carried by optical flow in the right direction, the schedule, and the
keyframes confidence forces (a cut, an object leaving)."""

from __future__ import annotations

import numpy as np
import pytest

from mrcnn.datasets.clips import make_clip
from mrcnn.tracking.analysis import Tracked, video_analyser
from mrcnn.tracking.frame_motion import DenseFlow, FrameFlow, FrameStep
from mrcnn.tracking.keyframes import Keyframer, KeyframeSettings, carry_masks, parse_interval
from tests.helpers.moving_scenes import Scene, ScriptedModel, Square, detection, mask_iou, scripted


def moving_right(frames: int = 12, cut_at: int | None = None):
    return scripted(Scene([Square((30, 20), (0.0, 3.0))], cut_at=cut_at), frames)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_carries_a_mask_forward_in_the_direction_it_moves(method):
    images, truths, _ = moving_right(4)
    flow = DenseFlow(method)
    for t in (1, 2, 3):
        previous, grey = _grey(images[t - 1]), _grey(images[t])
        step = FrameStep(grey, previous, flow.backward(previous, grey))
        carried = carry_masks(truths[t - 1].astype(np.float32), step)[0] >= 0.5
        assert mask_iou(carried[:, :, 0], truths[t][:, :, 0]) > 0.85
        gained = np.flatnonzero(carried[:, :, 0].any(axis=0))
        assert gained[-1] > np.flatnonzero(truths[t - 1][:, :, 0].any(axis=0))[-1]  # right


def _grey(image: np.ndarray) -> np.ndarray:
    return image.mean(axis=2).astype(np.uint8)


def run(keyframer: Keyframer, images, model) -> tuple[list[dict], list[str]]:
    """Carry or detect each frame; the results and each frame's keyframe reason."""
    frame_flow, results, reasons = FrameFlow(), [], []
    for image in images:
        step = frame_flow(image)
        carried, reason = keyframer.carry(step)
        if carried is None:
            carried = model.detect([image])[0]
            keyframer.keyed(step.grey, carried)
        results.append(carried)
        reasons.append(reason)
    return results, reasons


def test_interval_k_detects_every_kth_frame_and_carries_the_rest():
    images, truths, model = moving_right(12)
    results, reasons = run(Keyframer(4), images, model)
    assert [t for t, r in enumerate(reasons) if r] == [0, 4, 8]
    assert reasons[0] == "first" and reasons[4] == "interval"
    assert model.detected_frames == 3
    for t in range(12):
        assert mask_iou(results[t]["masks"][:, :, 0], truths[t][:, :, 0]) > 0.8, t


def test_a_cut_forces_a_keyframe_on_the_cut_frame():
    images, _, model = moving_right(12, cut_at=6)
    _, reasons = run(Keyframer(10), images, model)
    assert reasons[6] == "cut"
    assert [t for t, r in enumerate(reasons) if r] == [0, 6]


def test_an_object_leaving_the_frame_forces_a_keyframe():
    scene = Scene([Square((30, 80), (0.0, 6.0))])  # reaches the right edge (128) at frame 4
    images, _, model = scripted(scene, 10)
    _, reasons = run(Keyframer(30), images, model)
    assert "lost" in reasons


def test_an_object_coming_in_forces_a_keyframe():
    scene = Scene([Square((30, 10), (0.0, 1.0)), Square((-30, 80), (6.0, 0.0), seed=2)])
    images, _, model = scripted(scene, 12)
    _, reasons = run(Keyframer(30), images, model)
    assert "motion" in reasons[2:8]


def test_objects_moving_on_a_plain_background_force_no_motion_keyframe():
    # On a plain background the optical flow is noise (nothing to match), but nothing there
    # changes: only the schedule keys these frames (all objects are in from the first).
    clip = make_clip("crossing", 0, frames=16)
    truths = [clip.masks[t] for t in range(len(clip.frames))]
    model = ScriptedModel(
        clip.frames, [detection(m, [0.9] * m.shape[2]) for m in truths], min_confidence=0.5
    )
    _, reasons = run(Keyframer(8), clip.frames, model)
    assert [t for t, r in enumerate(reasons) if r] == [0, 8], reasons


def test_auto_keys_fast_motion_more_often_than_slow():
    def keyframes(speed: float) -> int:
        images, _, model = scripted(Scene([Square((30, 10), (0.0, speed))]), 16)
        return sum(bool(r) for r in run(Keyframer("auto"), images, model)[1])

    assert keyframes(4.0) > keyframes(1.0) >= 2


def test_the_analyser_detects_keyframes_only_and_keeps_ids():
    images, _, model = moving_right(12)
    analyser = video_analyser(model, "stable", keyframe_interval=4)
    assert isinstance(analyser, Tracked)
    results = [analyser([image])[0] for image in images]
    assert model.detected_frames == 3
    assert model.config.DETECTION_MIN_CONFIDENCE == 0.7  # the floor is restored
    assert [r["keyframe"] for r in results[:5]] == ["first", "", "", "", "interval"]
    assert {int(i) for r in results[1:] for i in r["track_ids"]} == {1}


@pytest.mark.parametrize("value", ["0", "-2", "x", "2.5", 0])
def test_bad_intervals_and_modes_raise(value):
    with pytest.raises(ValueError, match="whole number >= 1, or 'auto'"):
        parse_interval(value)


def test_bad_modes_and_settings_raise():
    images, _, model = moving_right(2)
    with pytest.raises(ValueError, match="video mode 'fast'"):
        video_analyser(model, "fast")
    with pytest.raises(ValueError, match="keyframes carry tracks"):
        video_analyser(model, "per-frame", keyframe_interval=5)
    with pytest.raises(ValueError, match="KeyframeSettings"):
        KeyframeSettings(lost_fraction=1.5)
    with pytest.raises(ValueError, match="flow method"):
        DenseFlow("lucas-kanade")
    boxes_only = {**model.detect([images[0]])[0], "masks": None}
    with pytest.raises(ValueError, match="keyframes carry masks"):
        Keyframer(3).keyed(images[0].mean(axis=2).astype(np.uint8), boxes_only)
