"""Each object's move between frames: the median flow, refined by aligning the object's edge."""

from __future__ import annotations

import numpy as np

from mrcnn.datasets.clips import make_clip
from mrcnn.tracking.frame_motion import FrameFlow, FrameStep, object_motion, refined_motion


def rigid_moves(clip, max_shift: int = 4):
    """(step, mask, true (dy, dx)) for each object that moved rigidly by whole pixels (its
    drawn mask at t is its mask at t-1 moved exactly; found by search)."""
    frame_flow = FrameFlow()
    for t, frame in enumerate(clip.frames):
        step = frame_flow(frame)
        if not t:
            continue
        before = list(clip.track_ids[t - 1])
        for i, track_id in enumerate(clip.track_ids[t]):
            mask = clip.masks[t][:, :, i]
            if track_id not in before or mask.sum() < 50:
                continue
            earlier = clip.masks[t - 1][:, :, before.index(track_id)]
            for dy in range(-max_shift, max_shift + 1):
                for dx in range(-max_shift, max_shift + 1):
                    if np.array_equal(np.roll(earlier, (dy, dx), axis=(0, 1)), mask):
                        yield step, mask, np.array([dy, dx], float)


def test_aligning_the_edge_finds_flat_objects_moves_more_exactly_than_the_median_flow():
    flow_errors, refined_errors = [], []
    for step, mask, truth in rigid_moves(make_clip("crossing", 0, frames=30)):
        flow_errors.append(np.abs(object_motion(mask, step.flow) - truth).max())
        refined_errors.append(np.abs(step.object_motion(mask) - truth).max())
    assert len(refined_errors) >= 15
    assert np.median(refined_errors) < 0.05 < np.median(flow_errors)
    assert np.mean(refined_errors) < 0.5 * np.mean(flow_errors)


def test_a_guess_far_off_stands_and_a_first_frame_has_no_motion():
    clip = make_clip("crossing", 0, frames=4)
    step, mask, truth = next(rigid_moves(clip))
    far = truth + np.array([6.0, -6.0])
    assert np.array_equal(refined_motion(step.previous, step.grey, mask, far), far)
    first = FrameFlow()(clip.frames[0])
    assert first.flow is None and first.object_motion(mask) is None
    assert FrameStep(step.grey, None, step.flow).object_motion(mask) is not None
