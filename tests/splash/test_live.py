"""Choosing tracks and drawing track ids on a video's frames."""

from __future__ import annotations

import numpy as np
import pytest

from mrcnn.splash.live import draw_track_ids, select_tracks


def result(track_ids) -> dict:
    n = len(track_ids)
    masks = np.zeros((40, 60, n), bool)
    for i in range(n):
        masks[5:20, 10 * i : 10 * i + 8, i] = True
    return {
        "rois": np.array([[5, 10 * i, 20, 10 * i + 8] for i in range(n)], np.int32).reshape(-1, 4),
        "class_ids": np.ones(n, np.int32),
        "scores": np.full(n, 0.9, np.float32),
        "masks": masks,
        "track_ids": np.array(track_ids, np.int64),
        "keyframe": "",
    }


def test_select_tracks_keeps_the_chosen_ids_with_their_masks():
    picked = select_tracks(result([3, -1, 7]), [7, 9])
    assert picked["track_ids"].tolist() == [7]
    assert picked["masks"].shape == (40, 60, 1) and picked["masks"][:, 20:28, 0].any()
    assert picked["keyframe"] == ""
    assert select_tracks(result([3]), None)["track_ids"].tolist() == [3]


def test_select_tracks_without_track_ids_says_what_to_do():
    plain = result([1])
    del plain["track_ids"]
    with pytest.raises(ValueError, match="tracking analyser"):
        select_tracks(plain, [1])


def test_ids_are_drawn_on_tracked_instances_only():
    image = np.full((40, 60, 3), 128, np.uint8)
    drawn = draw_track_ids(image, result([5, -1]))
    assert (drawn[:, :10] != 128).any()  # near the first box
    assert (drawn[:, 12:20] == 128).all()  # the untracked one: nothing
    assert (image == 128).all()  # the input is untouched
